/**
 * Numbers of the NBD protocol, named as the specification names them
 * (github.com/NetworkBlockDevice/nbd, doc/proto.md; CONVENTIONS.md item 11).
 * Everything on the wire is big-endian ("network byte order").
 */

/** `NBDMAGIC`, first 8 bytes the server sends (proto.md "Newstyle negotiation"). */
export const NBDMAGIC = 0x4e42444d41474943n;
/** `IHAVEOPT`, sent by the server after NBDMAGIC and by the client before every option. */
export const IHAVEOPT = 0x49484156454f5054n;
/** Magic of every option reply (proto.md "Fixed newstyle negotiation"). */
export const NBD_OPT_REPLY_MAGIC = 0x3e889045565a9n;
/** Magic of a transmission request (proto.md "Request message"). */
export const NBD_REQUEST_MAGIC = 0x25609513;
/** Magic of a simple reply (proto.md "Simple reply message"). */
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
/** Magic of a structured reply chunk (proto.md "Structured reply chunk message"). */
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;

/** Handshake flags (server, 16 bits). */
export const NBD_FLAG_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_NO_ZEROES = 1 << 1;

/** Client flags (32 bits). */
export const NBD_FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_C_NO_ZEROES = 1 << 1;

/** Transmission flags (16 bits, proto.md "Transmission flags"). */
export const NBD_FLAG_HAS_FLAGS = 1 << 0;
export const NBD_FLAG_READ_ONLY = 1 << 1;
export const NBD_FLAG_SEND_FLUSH = 1 << 2;
export const NBD_FLAG_SEND_FUA = 1 << 3;
export const NBD_FLAG_ROTATIONAL = 1 << 4;
export const NBD_FLAG_SEND_TRIM = 1 << 5;
export const NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6;
export const NBD_FLAG_SEND_DF = 1 << 7;
export const NBD_FLAG_CAN_MULTI_CONN = 1 << 8;
export const NBD_FLAG_SEND_CACHE = 1 << 10;
export const NBD_FLAG_SEND_FAST_ZERO = 1 << 11;

/** Option types (proto.md "Option types"). */
export const NBD_OPT_EXPORT_NAME = 1;
export const NBD_OPT_ABORT = 2;
export const NBD_OPT_LIST = 3;
export const NBD_OPT_STARTTLS = 5;
export const NBD_OPT_INFO = 6;
export const NBD_OPT_GO = 7;
export const NBD_OPT_STRUCTURED_REPLY = 8;
export const NBD_OPT_LIST_META_CONTEXT = 9;
export const NBD_OPT_SET_META_CONTEXT = 10;

/** Option reply types (proto.md "Option reply types"); errors have bit 31 set. */
export const NBD_REP_ACK = 1;
export const NBD_REP_SERVER = 2;
export const NBD_REP_INFO = 3;
export const NBD_REP_META_CONTEXT = 4;
export const NBD_REP_FLAG_ERROR = 0x80000000;
export const NBD_REP_ERR_UNSUP = NBD_REP_FLAG_ERROR + 1;
export const NBD_REP_ERR_POLICY = NBD_REP_FLAG_ERROR + 2;
export const NBD_REP_ERR_INVALID = NBD_REP_FLAG_ERROR + 3;
export const NBD_REP_ERR_PLATFORM = NBD_REP_FLAG_ERROR + 4;
export const NBD_REP_ERR_TLS_REQD = NBD_REP_FLAG_ERROR + 5;
export const NBD_REP_ERR_UNKNOWN = NBD_REP_FLAG_ERROR + 6;
export const NBD_REP_ERR_SHUTDOWN = NBD_REP_FLAG_ERROR + 7;
export const NBD_REP_ERR_BLOCK_SIZE_REQD = NBD_REP_FLAG_ERROR + 8;
export const NBD_REP_ERR_TOO_BIG = NBD_REP_FLAG_ERROR + 9;

/** `NBD_REP_INFO` information types. */
export const NBD_INFO_EXPORT = 0;
export const NBD_INFO_NAME = 1;
export const NBD_INFO_DESCRIPTION = 2;
export const NBD_INFO_BLOCK_SIZE = 3;

/** Command types (proto.md "Request types"). */
export const NBD_CMD_READ = 0;
export const NBD_CMD_WRITE = 1;
export const NBD_CMD_DISC = 2;
export const NBD_CMD_FLUSH = 3;
export const NBD_CMD_TRIM = 4;
export const NBD_CMD_CACHE = 5;
export const NBD_CMD_WRITE_ZEROES = 6;
export const NBD_CMD_BLOCK_STATUS = 7;

/** Command flags (proto.md "Command flags"). */
export const NBD_CMD_FLAG_FUA = 1 << 0;
export const NBD_CMD_FLAG_NO_HOLE = 1 << 1;
export const NBD_CMD_FLAG_DF = 1 << 2;
export const NBD_CMD_FLAG_REQ_ONE = 1 << 3;
export const NBD_CMD_FLAG_FAST_ZERO = 1 << 4;

/** Structured reply flags and chunk types (proto.md "Structured reply types"). */
export const NBD_REPLY_FLAG_DONE = 1 << 0;
export const NBD_REPLY_TYPE_NONE = 0;
export const NBD_REPLY_TYPE_OFFSET_DATA = 1;
export const NBD_REPLY_TYPE_OFFSET_HOLE = 2;
export const NBD_REPLY_TYPE_BLOCK_STATUS = 5;
export const NBD_REPLY_TYPE_ERROR = (1 << 15) + 1;
export const NBD_REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2;

/** `base:allocation` state flags (proto.md "`base:allocation` metadata context"). */
export const NBD_STATE_HOLE = 1 << 0;
export const NBD_STATE_ZERO = 1 << 1;

/** The one metadata context this server offers. */
export const BASE_ALLOCATION = 'base:allocation';

/** Error values of the transmission phase (proto.md "Error values"). */
export const NBD_EPERM = 1;
export const NBD_EIO = 5;
export const NBD_ENOMEM = 12;
export const NBD_EINVAL = 22;
export const NBD_ENOSPC = 28;
export const NBD_EOVERFLOW = 75;
export const NBD_ENOTSUP = 95;
export const NBD_ESHUTDOWN = 108;

/** One of the error values the specification allows in a reply. */
export type NbdErrno =
  | typeof NBD_EPERM
  | typeof NBD_EIO
  | typeof NBD_ENOMEM
  | typeof NBD_EINVAL
  | typeof NBD_ENOSPC
  | typeof NBD_EOVERFLOW
  | typeof NBD_ENOTSUP
  | typeof NBD_ESHUTDOWN;

/** Sizes of the fixed wire structures, bytes. */
export const REQUEST_HEADER_BYTES = 28;
export const SIMPLE_REPLY_HEADER_BYTES = 16;
export const STRUCTURED_REPLY_HEADER_BYTES = 20;
export const OPTION_HEADER_BYTES = 16;
export const OPTION_REPLY_HEADER_BYTES = 20;
export const HANDSHAKE_HELLO_BYTES = 18;

/** Longest string (export name, error message, context name) the spec allows, bytes. */
export const NBD_STRING_MAX_BYTES = 4096;
/**
 * A payload up to this many bytes must not be treated as a denial of service even when it
 * exceeds the advertised maximum (proto.md "Size constraints"): 2^25.
 */
export const NBD_DOS_FLOOR_BYTES = 1 << 25;
/** Most descriptors one BLOCK_STATUS chunk should carry (proto.md, 2^20). */
export const BLOCK_STATUS_EXTENTS_MAX = 1 << 20;
