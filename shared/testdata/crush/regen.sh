#!/usr/bin/env bash
# Regenerates the CRUSH fixtures from real Ceph (Debian `ceph-base`: crushtool, osdmaptool).
# Every map is compiled by crushtool from the committed text (NAME.txt is crushtool's own
# decompiled form); NAME.mappings.gz holds `crushtool --test --show-mappings` for every rule,
# num-rep 1..6 and x 0..1023, under each weight set of NAME.weights (one `--weight` set per
# line, blank = none), each block headed by `# weights: <args> num-rep: <n>`.
# Usage: shared/testdata/crush/regen.sh   (needs crushtool on PATH; CI uses the committed output)
set -euo pipefail
cd "$(dirname "$0")"
command -v crushtool >/dev/null || { echo "crushtool not found (apt-get install ceph-base)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
MAX_X=${MAX_X:-1023}

# Rules appended to built maps (ids 1..): indep and multi-step variants.
extra_rules() { # $1 = root name, $2 = leaf failure domain, $3 = upper failure domain
cat <<RULES
rule indep_${2} {
	id 1
	type erasure
	min_size 1
	max_size 20
	step set_chooseleaf_tries 5
	step set_choose_tries 100
	step take $1
	step chooseleaf indep 0 type $2
	step emit
}
rule firstn_${3} {
	id 2
	type replicated
	min_size 1
	max_size 10
	step take $1
	step chooseleaf firstn 0 type $3
	step emit
}
rule ${3}_then_${2} {
	id 3
	type erasure
	min_size 1
	max_size 20
	step take $1
	step choose indep 3 type $3
	step chooseleaf indep 2 type $2
	step emit
}
rule choose_osd {
	id 4
	type replicated
	min_size 1
	max_size 10
	step take $1
	step choose firstn 0 type osd
	step emit
}
RULES
}

build_map() { # name, crushtool --build args...
  local name=$1; shift
  crushtool -o "$tmp/$name.bin" --build "$@" >/dev/null 2>&1
  crushtool -d "$tmp/$name.bin" -o "$tmp/$name.built.txt"
}

with_rules() { # name root leaf upper
  local name=$1
  sed '/^# end crush map/d' "$tmp/$name.built.txt" > "$tmp/$name.src.txt"
  extra_rules "$2" "$3" "$4" >> "$tmp/$name.src.txt"
  echo "# end crush map" >> "$tmp/$name.src.txt"
}

# 1. racks: 3 racks x 4 hosts x 3 OSDs, straw2.
build_map racks --num-osds 36 host straw2 3 rack straw2 4 root straw2 0
with_rules racks root host rack
# 2. flat: 10 OSDs in one root.
build_map flat --num-osds 10 root straw2 0
sed '/^# end crush map/d; /^# rules/,$d' "$tmp/flat.built.txt" > "$tmp/flat.src.txt"
cat >> "$tmp/flat.src.txt" <<'RULES'
# rules
rule flat_firstn {
	id 0
	type replicated
	min_size 1
	max_size 10
	step take root
	step choose firstn 0 type osd
	step emit
}
rule flat_indep {
	id 1
	type erasure
	min_size 1
	max_size 20
	step take root
	step choose indep 0 type osd
	step emit
}
# end crush map
RULES
# 3. uniform and list buckets.
build_map algs --num-osds 24 host uniform 4 rack list 3 root straw2 0
with_rules algs root host rack

for name in racks flat algs; do
  crushtool -c "$tmp/$name.src.txt" -o "$tmp/$name.bin"
  crushtool -d "$tmp/$name.bin" -o "$name.txt"
done
# 4. hand-written maps (mixed weights, device classes, legacy tunables) kept as source.
for name in mixed classes legacy straw0 straw1 chooseargs; do
  crushtool -c "$name.src.txt" -o "$tmp/$name.bin"
  crushtool -d "$tmp/$name.bin" -o "$name.txt"
done

for name in racks flat algs mixed classes legacy straw0 straw1 chooseargs; do
  crushtool -c "$name.txt" -o "$tmp/$name.bin"
  : > "$tmp/$name.mappings"
  weights_file="$name.weights"
  [ -f "$weights_file" ] || echo "" > "$weights_file"
  while IFS= read -r wset; do
    wargs=()
    for pair in $wset; do wargs+=(--weight "${pair%%=*}" "${pair#*=}"); done
    for rep in 1 2 3 4 5 6; do
      echo "# weights: $wset num-rep: $rep" >> "$tmp/$name.mappings"
      crushtool -i "$tmp/$name.bin" --test --show-mappings --num-rep "$rep" --min-x 0 --max-x "$MAX_X" "${wargs[@]}" \
        >> "$tmp/$name.mappings"
    done
  done < "$weights_file"
  gzip -9n < "$tmp/$name.mappings" > "$name.mappings.gz"
done

# crushtool --build output, decompiled, for the builder test.
crushtool -o "$tmp/build.bin" --build --num-osds 36 host straw2 3 rack straw2 4 root straw2 0 >/dev/null 2>&1
crushtool -d "$tmp/build.bin" -o build-36.txt
# A few crushtool edits, to compare with builder.ts.
crushtool -i "$tmp/build.bin" --add-item 36 1.5 osd.36 --loc host host12 --loc rack rack3 --loc root root -o "$tmp/add.bin"
crushtool -d "$tmp/add.bin" -o build-36-add.txt
crushtool -i "$tmp/build.bin" --reweight-item osd.7 0.25 -o "$tmp/rw.bin"
crushtool -d "$tmp/rw.bin" -o build-36-reweight.txt
crushtool -i "$tmp/build.bin" --remove-item osd.4 -o "$tmp/rm.bin"
crushtool -d "$tmp/rm.bin" -o build-36-remove.txt
# Device classes set on a subtree (shadow trees rebuilt), for crushSetDeviceClass.
crushtool -i "$tmp/build.bin" --set-subtree-class host0 ssd --set-subtree-class rack1 hdd --reclassify -o "$tmp/cls.bin"
crushtool -d "$tmp/cls.bin" -o build-36-classes.txt
# PG mappings from osdmaptool: an OSDMap with one replicated pool ('rbd', id 1, hashpspool)
# whose CRUSH map is imported from a fixture; all OSDs up and in except `--mark-out`.
# NAME.pgs.txt = `--test-map-pgs-dump-all` (raw, up, acting per PG), after a header line
# `# osds N pg_bits B pgp_bits P out K`; objects.txt = `--test-map-object` on the racks map.
osdmap_fixture() { # name numosds pg_bits pgp_bits out
  local name=$1 n=$2 pgb=$3 pgpb=$4 out=$5
  crushtool -c "$name.txt" -o "$tmp/$name.bin"
  osdmaptool --createsimple "$n" --with-default-pool --pg-bits "$pgb" --pgp-bits "$pgpb" --clobber "$tmp/om" >/dev/null 2>&1
  osdmaptool "$tmp/om" --import-crush "$tmp/$name.bin" >/dev/null 2>&1
  { echo "# osds $n pg_bits $pgb pgp_bits $pgpb out $out"
    osdmaptool "$tmp/om" --mark-up-in --mark-out "$out" --test-map-pgs-dump-all --pool 1 2>/dev/null; } > "$name.pgs.txt"
}
osdmap_fixture racks 36 4 4 3
osdmap_fixture mixed 16 5 4 9
osdmap_fixture classes 18 6 5 2
osdmap_fixture legacy 20 4 3 0
osdmap_fixture chooseargs 24 4 4 5
crushtool -c racks.txt -o "$tmp/racks.bin"
osdmaptool --createsimple 36 --with-default-pool --pg-bits 4 --clobber "$tmp/om" >/dev/null 2>&1
osdmaptool "$tmp/om" --import-crush "$tmp/racks.bin" >/dev/null 2>&1
{ echo "# osds 36 pg_bits 4 pgp_bits 4 out 3"
  for obj in foo bar a ab abc abcdefghijk abcdefghijkl abcdefghijklm rbd_header.10226b8b4567 \
             rbd_data.10226b8b4567.0000000000000000 rbd_data.10226b8b4567.00000000000003ff \
             10000000000.00000000 10000000001.0000002a rbd_directory rbd_info \
             'with space' 'UPPER_and_lower.123' 0123456789abcdef0123456789abcdef0123456789; do
    osdmaptool "$tmp/om" --mark-up-in --mark-out 3 --test-map-object "$obj" --pool 1 2>/dev/null | grep "^ object"
  done; } > objects.txt
# crushtool --test output formats, for aspen-crushtool's CLI test: cli-N.args holds the
# arguments after `-i MAP.bin`, cli-N.out crushtool's stdout.
cli_case() { # n map args...
  local n=$1 map=$2; shift 2
  crushtool -c "$map.txt" -o "$tmp/$map.bin"
  echo "$map $*" > "cli-$n.args"
  crushtool -i "$tmp/$map.bin" "$@" > "cli-$n.out" 2>&1
}
cli_case 1 mixed --test --show-statistics --show-utilization --show-bad-mappings --num-rep 4 --weight 4 0 --max-x 199
cli_case 2 classes --test --show-utilization-all --rule 1 --num-rep 3 --min-x 0 --max-x 99
cli_case 3 racks --test --show-mappings --pool-id 3 --rule 1 --num-rep 5 --min-x 10 --max-x 40
cli_case 4 legacy --test --show-statistics --min-x 0 --max-x 299
echo "regenerated fixtures in $(pwd)"
