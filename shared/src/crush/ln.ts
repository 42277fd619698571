/**
 * CRUSH's fixed-point logarithm (Ceph src/crush/mapper.c `crush_ln`, tables from
 * src/crush/crush_ln_table.h). straw2 draws depend on it bit for bit, so the tables are
 * Ceph's own values, including the entries of `__LL_tbl` that deviate from the formula.
 *
 * `crushLn(u)` = 2^44 * log2(u + 1) for u in [0, 0xffff], as a non-negative integer < 2^48.
 * Since straw2 only ever needs `crush_ln(u) - 2^48` divided by a weight, {@link straw2LnTable}
 * precomputes that (a negative safe integer) for all 65536 inputs once.
 */

// RH_LH_tbl[2k] = 2^48 / (1 + k/128); RH_LH_tbl[2k+1] = 2^48 * log2(1 + k/128).
const RH_LH_TBL: readonly bigint[] = [
  0x1000000000000n, 0x000000000000n, 0xfe03f80fe040n, 0x02dfca16dde1n,
  0xfc0fc0fc0fc1n, 0x05b9e5a170b4n, 0xfa232cf25214n, 0x088e68ea899an,
  0xf83e0f83e0f9n, 0x0b5d69bac77en, 0xf6603d980f67n, 0x0e26fd5c8555n,
  0xf4898d5f85bcn, 0x10eb389fa29fn, 0xf2b9d6480f2cn, 0x13aa2fdd27f1n,
  0xf0f0f0f0f0f1n, 0x1663f6fac913n, 0xef2eb71fc435n, 0x1918a16e4633n,
  0xed7303b5cc0fn, 0x1bc84240adabn, 0xebbdb2a5c162n, 0x1e72ec117fa5n,
  0xea0ea0ea0ea1n, 0x2118b119b4f3n, 0xe865ac7b7604n, 0x23b9a32eaa56n,
  0xe6c2b4481cd9n, 0x2655d3c4f15cn, 0xe525982af70dn, 0x28ed53f307een,
  0xe38e38e38e39n, 0x2b803473f7adn, 0xe1fc780e1fc8n, 0x2e0e85a9de04n,
  0xe070381c0e08n, 0x309857a05e07n, 0xdee95c4ca038n, 0x331dba0efce1n,
  0xdd67c8a60dd7n, 0x359ebc5b69d9n, 0xdbeb61eed19dn, 0x381b6d9bb29bn,
  0xda740da740dbn, 0x3a93dc9864b2n, 0xd901b2036407n, 0x3d0817ce9cd4n,
  0xd79435e50d7an, 0x3f782d7204d0n, 0xd62b80d62b81n, 0x41e42b6ec0c0n,
  0xd4c77b03531en, 0x444c1f6b4c2dn, 0xd3680d3680d4n, 0x46b016ca47c1n,
  0xd20d20d20d21n, 0x49101eac381cn, 0xd0b69fcbd259n, 0x4b6c43f1366an,
  0xcf6474a8819fn, 0x4dc4933a9337n, 0xce168a772509n, 0x501918ec6c11n,
  0xcccccccccccdn, 0x5269e12f346en, 0xcb8727c065c4n, 0x54b6f7f1325an,
  0xca4587e6b750n, 0x570068e7ef5an, 0xc907da4e8712n, 0x59463f919deen,
  0xc7ce0c7ce0c8n, 0x5b8887367433n, 0xc6980c6980c7n, 0x5dc74ae9fbecn,
  0xc565c87b5f9en, 0x6002958c5871n, 0xc4372f855d83n, 0x623a71cb82c8n,
  0xc30c30c30c31n, 0x646eea247c5cn, 0xc1e4bbd595f7n, 0x66a008e4788cn,
  0xc0c0c0c0c0c1n, 0x68cdd829fd81n, 0xbfa02fe80bfbn, 0x6af861e5fc7dn,
  0xbe82fa0be830n, 0x6d1fafdce20an, 0xbd6910470767n, 0x6f43cba79e40n,
  0xbc52640bc527n, 0x7164beb4a56dn, 0xbb3ee721a54en, 0x73829248e961n,
  0xba2e8ba2e8bbn, 0x759d4f80cba8n, 0xb92143fa36f6n, 0x77b4ff5108d9n,
  0xb81702e05c0cn, 0x79c9aa879d53n, 0xb70fbb5a19bfn, 0x7bdb59cca388n,
  0xb60b60b60b61n, 0x7dea15a32c1bn, 0xb509e68a9b95n, 0x7ff5e66a0ffen,
  0xb40b40b40b41n, 0x81fed45cbccbn, 0xb30f63528918n, 0x8404e793fb81n,
  0xb21642c8590cn, 0x86082806b1d5n, 0xb11fd3b80b12n, 0x88089d8a9e47n,
  0xb02c0b02c0b1n, 0x8a064fd50f2an, 0xaf3addc680b0n, 0x8c01467b94bbn,
  0xae4c415c9883n, 0x8df988f4ae80n, 0xad602b580ad7n, 0x8fef1e987409n,
  0xac7691840ac8n, 0x91e20ea1393en, 0xab8f69e2835an, 0x93d2602c2e5fn,
  0xaaaaaaaaaaabn, 0x95c01a39fbd6n, 0xa9c84a47a080n, 0x97ab43af59f9n,
  0xa8e83f5717c1n, 0x9993e355a4e5n, 0xa80a80a80a81n, 0x9b79ffdb6c8bn,
  0xa72f0539782an, 0x9d5d9fd5010bn, 0xa655c4392d7cn, 0x9f3ec9bcfb80n,
  0xa57eb50295fbn, 0xa11d83f4c355n, 0xa4a9cf1d9684n, 0xa2f9d4c51039n,
  0xa3d70a3d70a4n, 0xa4d3c25e68dcn, 0xa3065e3fae7dn, 0xa6ab52d99e76n,
  0xa237c32b16d0n, 0xa8808c384547n, 0xa16b312ea8fdn, 0xaa5374652a1cn,
  0xa0a0a0a0a0a1n, 0xac241134c4e9n, 0x9fd809fd80a0n, 0xadf26865a8a1n,
  0x9f1165e72549n, 0xafbe7fa0f04dn, 0x9e4cad23dd60n, 0xb1885c7aa982n,
  0x9d89d89d89d9n, 0xb35004723c46n, 0x9cc8e160c3fcn, 0xb5157cf2d078n,
  0x9c09c09c09c1n, 0xb6d8cb53b0can, 0x9b4c6f9ef03bn, 0xb899f4d8ab63n,
  0x9a90e7d95bc7n, 0xba58feb2703an, 0x99d722dabde6n, 0xbc15edfeed32n,
  0x991f1a515886n, 0xbdd0c7c9a817n, 0x9868c809868dn, 0xbf89910c1678n,
  0x97b425ed097cn, 0xc1404eadf383n, 0x97012e025c05n, 0xc2f5058593d9n,
  0x964fda6c0965n, 0xc4a7ba58377cn, 0x95a02568095bn, 0xc65871da59ddn,
  0x94f2094f2095n, 0xc80730b00016n, 0x944580944581n, 0xc9b3fb6d0559n,
  0x939a85c4093an, 0xcb5ed69565afn, 0x92f113840498n, 0xcd07c69d8702n,
  0x924924924925n, 0xceaecfea8085n, 0x91a2b3c4d5e7n, 0xd053f6d26089n,
  0x90fdbc090fdcn, 0xd1f73f9c70c0n, 0x905a38633e07n, 0xd398ae817906n,
  0x8fb823ee08fcn, 0xd53847ac00a6n, 0x8f1779d9fdc4n, 0xd6d60f388e41n,
  0x8e78356d1409n, 0xd8720935e643n, 0x8dda5202376an, 0xda0c39a54804n,
  0x8d3dcb08d3ddn, 0xdba4a47aa996n, 0x8ca29c046515n, 0xdd3b4d9cf24bn,
  0x8c08c08c08c1n, 0xded038e633f3n, 0x8b70344a139cn, 0xe0636a23e2een,
  0x8ad8f2fba939n, 0xe1f4e5170d02n, 0x8a42f870566an, 0xe384ad748f0en,
  0x89ae4089ae41n, 0xe512c6e54998n, 0x891ac73ae982n, 0xe69f35065448n,
  0x888888888889n, 0xe829fb693044n, 0x87f78087f781n, 0xe9b31d93f98en,
  0x8767ab5f34e5n, 0xeb3a9f019750n, 0x86d905447a35n, 0xecc08321eb30n,
  0x864b8a7de6d2n, 0xee44cd59ffabn, 0x85bf37612cefn, 0xefc781043579n,
  0x853408534086n, 0xf148a170700an, 0x84a9f9c8084bn, 0xf2c831e44116n,
  0x842108421085n, 0xf446359b1353n, 0x839930523fbfn, 0xf5c2afc65447n,
  0x83126e978d50n, 0xf73da38d9d4an, 0x828cbfbeb9a1n, 0xf8b7140edbb1n,
  0x820820820821n, 0xfa2f045e7832n, 0x81848da8faf1n, 0xfba577877d7dn,
  0x810204081021n, 0xfd1a708bbe11n, 0x808080808081n, 0xfe8df263f957n,
  0x800000000000n, 0xffff00000000n,
];

// LL_tbl[k] = 2^48 * log2(1 + k/2^15) (Ceph's table, irregular entries included).
const LL_TBL: readonly bigint[] = [
  0x000000000000n, 0x0002e2a60a00n, 0x00070cb64ec5n, 0x0009ef50ce67n,
  0x000cd1e588fdn, 0x000fb4747e9cn, 0x001296fdaf5en, 0x001579811b58n,
  0x00185bfec2a1n, 0x001b3e76a552n, 0x001e20e8c380n, 0x002103551d43n,
  0x0023e5bbb2b2n, 0x0026c81c83e4n, 0x0029aa7790f0n, 0x002c8cccd9edn,
  0x002f6f1c5ef2n, 0x003251662017n, 0x003533aa1d71n, 0x003815e8571an,
  0x003af820cd26n, 0x003dda537faen, 0x0040bc806ec8n, 0x00439ea79a8cn,
  0x004680c90310n, 0x004962e4a86cn, 0x004c44fa8ab6n, 0x004f270aaa06n,
  0x005209150672n, 0x0054eb19a013n, 0x0057cd1876fdn, 0x005aaf118b4an,
  0x005d9104dd0fn, 0x006072f26c64n, 0x006354da3960n, 0x006636bc441an,
  0x006918988ca8n, 0x006bfa6f1322n, 0x006edc3fd79fn, 0x0071be0ada35n,
  0x00749fd01afdn, 0x0077818f9a0cn, 0x007a6349577an, 0x007d44fd535en,
  0x008026ab8dcen, 0x0083085406e3n, 0x0085e9f6beb2n, 0x0088cb93b552n,
  0x008bad2aeadcn, 0x008e8ebc5f65n, 0x009170481305n, 0x009451ce05d3n,
  0x0097334e37e5n, 0x009a14c8a953n, 0x009cf63d5a33n, 0x009fd7ac4a9dn,
  0x00a2b07f3458n, 0x00a59a78ea6an, 0x00a87bd699fbn, 0x00ab5d2e8970n,
  0x00ae3e80b8e3n, 0x00b11fcd2869n, 0x00b40113d818n, 0x00b6e254c80an,
  0x00b9c38ff853n, 0x00bca4c5690cn, 0x00bf85f51a4an, 0x00c2671f0c26n,
  0x00c548433eb6n, 0x00c82961b211n, 0x00cb0a7a664dn, 0x00cdeb8d5b82n,
  0x00d0cc9a91c8n, 0x00d3ada20933n, 0x00d68ea3c1ddn, 0x00d96f9fbbdbn,
  0x00dc5095f744n, 0x00df31867430n, 0x00e2127132b5n, 0x00e4f35632ean,
  0x00e7d43574e6n, 0x00eab50ef8c1n, 0x00ed95e2be90n, 0x00f076b0c66cn,
  0x00f35779106an, 0x00f6383b9ca2n, 0x00f918f86b2an, 0x00fbf9af7c1an,
  0x00feda60cf88n, 0x0101bb0c658cn, 0x01049bb23e3cn, 0x01077c5259afn,
  0x010a5cecb7fcn, 0x010d3d81593an, 0x01101e103d7fn, 0x0112fe9964e4n,
  0x0115df1ccf7en, 0x0118bf9a7d64n, 0x011ba0126eadn, 0x011e8084a371n,
  0x012160f11bc6n, 0x01244157d7c3n, 0x012721b8d77fn, 0x012a02141b10n,
  0x012ce269a28en, 0x012fc2b96e0fn, 0x0132a3037daan, 0x01358347d177n,
  0x01386386698cn, 0x013b43bf45ffn, 0x013e23f266e9n, 0x0141041fcc5en,
  0x0143e4477678n, 0x0146c469654bn, 0x0149a48598f0n, 0x014c849c117cn,
  0x014f64accf08n, 0x015244b7d1a9n, 0x015524bd1976n, 0x015804bca687n,
  0x015ae4b678f2n, 0x015dc4aa90cen, 0x0160a498ee31n, 0x016384819134n,
  0x0166646479ecn, 0x01694441a870n, 0x016c24191cd7n, 0x016df6ca19bdn,
  0x0171e3b6d7aan, 0x0174c37d1e44n, 0x0177a33dab1cn, 0x017a82f87e49n,
  0x017d62ad97e2n, 0x0180425cf7fen, 0x0182b07f3458n, 0x018601aa8c19n,
  0x0188e148c046n, 0x018bc0e13b52n, 0x018ea073fd52n, 0x01918001065dn,
  0x01945f88568bn, 0x01973f09edf2n, 0x019a1e85ccaan, 0x019cfdfbf2c8n,
  0x019fdd6c6063n, 0x01a2bcd71593n, 0x01a59c3c126en, 0x01a87b9b570bn,
  0x01ab5af4e380n, 0x01ae3a48b7e5n, 0x01b11996d450n, 0x01b3f8df38d9n,
  0x01b6d821e595n, 0x01b9b75eda9bn, 0x01bc96961803n, 0x01bf75c79de3n,
  0x01c254f36c51n, 0x01c534198365n, 0x01c81339e336n, 0x01caf2548bd9n,
  0x01cdd1697d67n, 0x01d0b078b7f5n, 0x01d38f823b9an, 0x01d66e86086dn,
  0x01d94d841e86n, 0x01dc2c7c7df9n, 0x01df0b6f26dfn, 0x01e1ea5c194en,
  0x01e4c943555dn, 0x01e7a824db23n, 0x01ea8700aab5n, 0x01ed65d6c42bn,
  0x01f044a7279dn, 0x01f32371d51fn, 0x01f60236cccan, 0x01f8e0f60eb3n,
  0x01fbbfaf9af3n, 0x01fe9e63719en, 0x02017d1192ccn, 0x02045bb9fe94n,
  0x02073a5cb50dn, 0x0209c06e6212n, 0x020cf791026an, 0x020fd622997cn,
  0x0212b07f3458n, 0x02159334a8d8n, 0x021871b52150n, 0x021b502fe517n,
  0x021d6a73a78fn, 0x02210d144eeen, 0x0223eb7df52cn, 0x0226c9e1e713n,
  0x0229a84024bbn, 0x022c23679b4en, 0x022f64eb83a8n, 0x02324338a51bn,
  0x0235218012a9n, 0x0237ffc1cc69n, 0x023a2c3b0ea4n, 0x023d13ee805bn,
  0x024035e9221fn, 0x0243788faf25n, 0x024656b4e735n, 0x0247ed646bfen,
  0x024c12ee3d98n, 0x024ef1025c1an, 0x0251cf10c799n, 0x025492644d65n,
  0x02578b1c85een, 0x025a6919d8f0n, 0x025d13ee805bn, 0x026025036716n,
  0x026296453882n, 0x0265e0d62b53n, 0x0268beb701f3n, 0x026b9c92265en,
  0x026d32f798a9n, 0x0271583758ebn, 0x02743601673bn, 0x027713c5c3b0n,
  0x0279f1846e5fn, 0x027ccf3d6761n, 0x027e6580aecbn, 0x02828a9e44b3n,
  0x028568462932n, 0x0287bdbf5255n, 0x028b2384de4an, 0x028d13ee805bn,
  0x029035e9221fn, 0x029296453882n, 0x029699bdfb61n, 0x029902a37aabn,
  0x029c54b864c9n, 0x029deabd1083n, 0x02a20f9c0bb5n, 0x02a4c7605d61n,
  0x02a7bdbf5255n, 0x02a96056dafcn, 0x02ac3daf14efn, 0x02af1b019ecan,
  0x02b296453882n, 0x02b5d022d80fn, 0x02b8fa471cb3n, 0x02ba9012e713n,
  0x02bd6d4901ccn, 0x02c04a796cf6n, 0x02c327a428a6n, 0x02c61a5e8f4cn,
  0x02c8e1e891f6n, 0x02cbbf023fc2n, 0x02ce9c163e6en, 0x02d179248e13n,
  0x02d4562d2ec6n, 0x02d73330209dn, 0x02da102d63b0n, 0x02dced24f814n,
];

/** `crush_ln(xin)`: 2^44 * log2(xin + 1), exact as Ceph computes it. @param xin integer in [0, 0xffff]. */
export function crushLn(xin: number): bigint {
  let x = (xin + 1) >>> 0;
  let iexpon = 15;
  // Normalize so that bit 15 or 16 is set (x <= 0x10000 here).
  if (!(x & 0x18000)) {
    const bits = Math.clz32(x & 0x1ffff) - 16;
    x = (x << bits) >>> 0;
    iexpon = 15 - bits;
  }
  const index1 = (x >>> 8) << 1;
  const rh = RH_LH_TBL[index1 - 256]!;
  let lh = RH_LH_TBL[index1 + 1 - 256]!;
  const xl64 = (BigInt(x) * rh) >> 48n;
  let result = BigInt(iexpon) << 44n;
  const index2 = Number(xl64 & 0xffn);
  lh = lh + LL_TBL[index2]!;
  lh >>= 48n - 12n - 32n;
  result += lh;
  return result;
}

let lnTable: Float64Array | undefined;

/**
 * `crush_ln(u) - 0x1000000000000` for every u in [0, 0xffff], as doubles (all are exact:
 * magnitudes are below 2^53). Built once, lazily (65536 entries, 512 KiB).
 */
export function straw2LnTable(): Float64Array {
  if (lnTable) return lnTable;
  const t = new Float64Array(0x10000);
  for (let u = 0; u < 0x10000; u++) t[u] = Number(crushLn(u) - 0x1000000000000n);
  lnTable = t;
  return t;
}
