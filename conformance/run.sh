#!/bin/bash
# Run the opencontainers runtime-tools validation suite against an OCI runtime.
#
#   RUNTIME=/path/to/pyrunc conformance/run.sh     (default RUNTIME: pyrunc on PATH)
#
# Installs what it needs from Debian, fetches the suite's Debian source package
# into a cache (outside the git tree), builds it once, runs each of its test
# programs in a private mount namespace, writes raw TAP + a summary to
# OUTPUT_DIR and exits non-zero on any failure not listed in expected.tsv.
# See conformance/README.md for the knobs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${CONFORMANCE_CACHE:-/var/cache/pyrunc-conformance}
# The suite version the expected failures were established with; when the
# mirror no longer has it, the newest one in unstable is used (with a warning).
SUITE_PKG=golang-github-opencontainers-runtime-tools
SUITE_VERSION=${SUITE_VERSION:-0.9.0.109.ge931285-1}
SUITE_MIRROR=${SUITE_MIRROR:-http://deb.debian.org/debian}
PER_TEST_TIMEOUT=${PER_TEST_TIMEOUT:-60}
# Past this many seconds of testing the remaining programs are reported as not
# run, so that a hanging runtime cannot eat CI's whole time budget.
TOTAL_BUDGET=${TOTAL_BUDGET:-600}
PYTHON=/usr/bin/python3
# Programs with a timing race in the suite itself: retried once on failure.
RACY_PROGRAMS=${RACY_PROGRAMS:-killsig}
GOPKG_DIR=$CACHE/gopath/src/github.com/opencontainers/runtime-tools
RUN=$CACHE/run

# Build dependencies: golang-go, and the -dev package of every non-standard
# import of cmd/runtimetest and validation/... (found with `go list -deps`),
# except github.com/mndrix/tap-go (not packaged: conformance/tap replaces it).
PACKAGES=(
	golang-go make tar xz-utils dpkg-dev util-linux coreutils python3
	golang-github-google-uuid-dev
	golang-github-hashicorp-go-multierror-dev
	golang-github-mrunalp-fileutils-dev
	golang-github-opencontainers-specs-dev
	golang-github-opencontainers-selinux-dev
	golang-github-sirupsen-logrus-dev
	golang-gocapability-dev
	golang-github-urfave-cli-dev
	golang-golang-x-sys-dev
	golang-github-blang-semver-dev
	golang-github-xeipuuv-gojsonschema-dev
	golang-gopkg-yaml.v3-dev
)

log() { printf '[conformance] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

install_packages() {
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
			missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0
	log "installing ${missing[*]}"
	local apt=(apt-get -o DPkg::Lock::Timeout=600 -q)
	# A fresh machine has stale or empty lists: update once, then retry.
	DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y "${missing[@]}" >&2 ||
		{ "${apt[@]}" update >&2 && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y "${missing[@]}" >&2; }
}

# Fetch the suite's source with a private apt configuration: the binary -dev
# package lacks validation/, cmd/ and the Makefile, bookworm's source tarball
# is gone from the mirror, and the machine's own apt sources stay untouched.
fetch_source() {
	# Fetched already, for the version asked for?
	if [[ -f $GOPKG_DIR/.pyrunc-version && $(cat "$GOPKG_DIR/.pyrunc-request" 2>/dev/null) == "$SUITE_VERSION" ]]; then
		return 0
	fi
	local apt_dir=$CACHE/apt dl
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
	printf 'deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s unstable main\n' \
		"$SUITE_MIRROR" >"$apt_dir/sources.list"
	local apt=(apt-get -q
		-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=-
		-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
		-o APT::Sandbox::User=root)
	log "fetching $SUITE_PKG source (private apt lists in $apt_dir)"
	"${apt[@]}" update >&2
	dl=$(mktemp -d "$CACHE/dl.XXXXXX")
	# The .dsc may be missing from the mirror (404) while the tarballs, whose
	# hashes apt checks against the signed Sources index, are there: judge by
	# the orig tarball, not by apt's exit status.
	(cd "$dl" && "${apt[@]}" source --download-only "$SUITE_PKG=$SUITE_VERSION" >&2) || true
	if ! compgen -G "$dl/${SUITE_PKG}_*.orig.tar.*" >/dev/null; then
		log "warning: $SUITE_PKG $SUITE_VERSION not on the mirror; using unstable's newest (expected.tsv may not fit it)"
		(cd "$dl" && "${apt[@]}" source --download-only "$SUITE_PKG" >&2) || true
	fi
	local orig
	orig=$(compgen -G "$dl/${SUITE_PKG}_*.orig.tar.*" | head -n1) || true
	[[ -n $orig ]] || die "could not download the $SUITE_PKG source tarball"
	rm -rf "$GOPKG_DIR"
	mkdir -p "$GOPKG_DIR"
	tar -xf "$orig" -C "$GOPKG_DIR" --strip-components=1
	basename "$orig" >"$GOPKG_DIR/.pyrunc-version"
	echo "$SUITE_VERSION" >"$GOPKG_DIR/.pyrunc-request"
	rm -rf "$dl"
}

build_suite() {
	local tapdir=$CACHE/gopath/src/github.com/mndrix/tap-go stamp want
	mkdir -p "$tapdir"
	cp "$HERE/tap/tap.go" "$tapdir/tap.go"
	# Rebuild when the suite source, our TAP package or the Go toolchain changes.
	want=$(cat "$GOPKG_DIR/.pyrunc-version" "$tapdir/tap.go" <(go version) | sha256sum | cut -d' ' -f1)
	stamp=$GOPKG_DIR/.pyrunc-built
	if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $GOPKG_DIR/runtimetest ]]; then
		return 0
	fi
	rm -f "$stamp"
	log "building runtimetest and the validation programs (GOPATH mode, offline)"
	local start=$SECONDS
	# GOPATH mode: our tree first so its runtime-tools and tap-go win over
	# Debian's older runtime-tools in /usr/share/gocode. CGO is off so that
	# the static runtimetest needs no libc.a.
	(cd "$GOPKG_DIR" && env GO111MODULE=off GOFLAGS= GOPROXY=off GOENV=off CGO_ENABLED=0 \
		GOPATH="$CACHE/gopath:/usr/share/gocode" GOCACHE="$CACHE/gocache" \
		make -j"$(nproc)" runtimetest validation-executables >"$CACHE/build.log" 2>&1) ||
		{ tail -n 30 "$CACHE/build.log" >&2; die "build failed (see $CACHE/build.log)"; }
	echo "$want" >"$stamp"
	log "built in $((SECONDS - start))s"
}

# Real cgroup hierarchies only: for crun the v2 mount point is covered by a
# tmpfs in which it creates plain directories that die with the namespace.
cgroup_mounts() {
	# The last mount on a mount point is the visible one.
	awk '{type[$2] = $3} END {for (m in type) if (type[m] ~ /^cgroup2?$/) print m}' /proc/self/mounts
}

# The suite's fixed cgroup paths: /cgrouptest (absolute cgroupsPath) and the
# testdir/ of testdir/cgrouptest/container (relative cgroupsPath), which a
# runtime may put below the hierarchy's root (crun) or below its own cgroup
# (runc); on every mounted hierarchy, v2 included (runc puts hugetlb there).
suite_cgroup_dirs() {
	local mnt own
	while read -r mnt; do
		echo "$mnt/cgrouptest"
		echo "$mnt/testdir"
		while read -r own; do
			[[ $own == / ]] || echo "$mnt$own/testdir"
		done < <(cut -d: -f3- /proc/self/cgroup | sort -u)
	done < <(cgroup_mounts) | sort -u
}

# Remove the suite's cgroups depth-first with rmdir only: a cgroup that still
# has processes refuses, and those are reported rather than killed.
clean_suite_cgroups() {
	local d left=0
	while read -r d; do
		[[ -d $d ]] || continue
		find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
		if [[ -d $d ]]; then
			log "warning: could not remove $d (processes still inside?)"
			left=1
		fi
	done < <(suite_cgroup_dirs)
	return "$left"
}

# Remove cgroups named after a container id this program used (the default
# cgroupsPath of runc-like runtimes) that outlived their container: prints
# how many there were. rmdir only, so live processes are never touched.
clean_id_cgroups() {
	local calls=$1 d n=0
	[[ -f $calls ]] || { echo 0; return 0; }
	while read -r d; do
		n=$((n + 1))
		find "$d" -depth -type d -exec rmdir {} + 2>/dev/null ||
			log "warning: could not remove leftover cgroup $d"
	done < <(cgroup_mounts | xargs -r -I{} find {} -mindepth 1 -maxdepth 7 -type d -regextype egrep \
		-regex '.*/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}' 2>/dev/null |
		grep -Fwf <(grep -oE '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}' "$calls" | sort -u) || true)
	echo "$n"
}

# Kill and delete every container the run left in its private state dir.
# Works for any runc-compatible CLI: the ids are the state dir's entries.
clean_containers() {
	local state=$1 real=$2 id n=0
	[[ -d $state ]] || { echo 0; return 0; }
	for id in "$state"/*; do
		[[ -d $id ]] || continue
		id=${id##*/}
		timeout 20 "$real" --root "$state" delete --force "$id" >/dev/null 2>&1 || true
		rm -rf --one-file-system "${state:?}/$id"
		n=$((n + 1))
	done
	echo "$n"
}

# Unmount whatever a test left under a directory, then remove it without ever
# crossing into another filesystem (a leaked bind mount of a host directory
# must not be emptied).
clean_tree() {
	local dir=$1 m
	[[ -d $dir ]] || return 0
	while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done < <(awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r)
	rm -rf --one-file-system "$dir"
}

# Only ever called inside our own mount namespace.
hide_unified() {
	local real=$1
	if [[ ${HIDE_UNIFIED:-auto} == 1 || (${HIDE_UNIFIED:-auto} == auto && ${real##*/} == crun) ]] &&
		[[ $(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null) == cgroup2fs ]]; then
		# crun refuses hybrid hosts; an empty tmpfs hides the v2 mount from it.
		# (Unmounting instead would make crun write into the tmpfs beneath.)
		mount -t tmpfs -o size=1m,mode=755 none /sys/fs/cgroup/unified
		log "hid /sys/fs/cgroup/unified from ${real##*/} with an empty tmpfs"
	fi
}

# Runs inside `unshare -m --propagation slave`: mounts made by the suite or the
# runtime (e.g. the shared rootfsPropagation test) cannot reach the host.
inner() {
	local real=$1 out=$2
	hide_unified "$real"

	local state=$RUN/state wrapper=$RUN/runtime
	mkdir -p "$state" "$RUN/tmp" "$out/tap"
	# The suite calls $RUNTIME with runc's CLI; this wrapper adds a private
	# --root so that every container of the run can be found and removed,
	# and logs each call (per program) for debugging.
	cat >"$wrapper" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >>"\${CONFORMANCE_CALLS:-/dev/null}"
exec $(printf %q "$real") --root $(printf %q "$state") "\$@"
EOF
	chmod 755 "$wrapper"

	local results=$out/results.tsv t name deadline=$((SECONDS + TOTAL_BUDGET))
	printf 'program\texit\tseconds\tleft_containers\tleft_cgroups\ttries\n' >"$results"
	cd "$GOPKG_DIR"
	for t in validation/*/*.t; do
		name=$(basename "$t" .t)
		if ((SECONDS >= deadline)); then
			printf '%s\tnot-run\t0\t0\t0\t0\n' "$name" >>"$results"
			continue
		fi
		run_program "$t" "$name" 1
		# A known suite race (see expected.md, "Races") gets one more try;
		# the first attempt's files are kept as <program>.try1.*.
		if [[ " $RACY_PROGRAMS " == *" $name "* ]] && program_failed "$results" "$out/tap/$name"; then
			for f in tap stderr calls; do
				mv "$out/tap/$name.$f" "$out/tap/$name.try1.$f" 2>/dev/null || true
			done
			sed -i '$d' "$results"
			log "$name failed: retrying once (known race)"
			run_program "$t" "$name" 2
		fi
	done
}

# run_program PATH NAME TRY: one program, its cleanup, one line of results.tsv.
# Uses inner()'s locals: out, state, wrapper, real, results.
run_program() {
	local t=$1 name=$2 try=$3 rc=0 start=$SECONDS secs left cgs
	mkdir -p "$RUN/tmp/$name"
	CONFORMANCE_CALLS=$out/tap/$name.calls TMPDIR=$RUN/tmp/$name RUNTIME=$wrapper \
		timeout -k 10 "$PER_TEST_TIMEOUT" "./$t" \
		</dev/null >"$out/tap/$name.tap" 2>"$out/tap/$name.stderr" || rc=$?
	secs=$((SECONDS - start))
	[[ $rc != 124 && $rc != 137 ]] || rc=timeout
	# Each program starts from a clean slate: no containers, bundles or
	# cgroups left by the previous one. What was left is recorded.
	left=$(clean_containers "$state" "$real")
	cgs=$(clean_id_cgroups "$out/tap/$name.calls")
	clean_tree "$RUN/tmp/$name"
	clean_suite_cgroups || true
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$secs" "$left" "$cgs" "$try" >>"$results"
	log "$(printf '%-36s exit %-7s %3ss' "$name" "$rc" "$secs")"
}

# Failed by its exit status or by a top-level "not ok" (not a nested one).
program_failed() {
	local results=$1 base=$2
	[[ $(tail -n1 "$results" | cut -f2) != 0 ]] || grep -q '^not ok' "$base.tap"
}

# Undo whatever a run left behind, however it ended (also a killed one).
final_cleanup() {
	local real
	if real=$(cat "$RUN/runtime-path" 2>/dev/null) && [[ -x $real ]]; then
		# In a namespace of its own, so that crun sees what it saw in the run.
		unshare -m --propagation slave env HIDE_UNIFIED="${HIDE_UNIFIED:-auto}" \
			bash "$HERE/run.sh" __clean "$real" || true
	fi
	clean_suite_cgroups || true
	clean_tree "$RUN"
}

main() {
	[[ $(id -u) == 0 ]] || die "must run as root"
	local runtime=${RUNTIME:-pyrunc} real name out
	real=$(command -v "$runtime") || die "runtime '$runtime' not found (set RUNTIME)"
	# Absolute, but symlinks kept: a runtime may look at its argv[0].
	[[ $real == /* ]] || real=$PWD/$real
	name=${real##*/}
	out=$(readlink -m "${OUTPUT_DIR:-$CACHE/results/$name}")

	mkdir -p "$CACHE"
	# Two runs cannot share a machine: the cgroup tests use fixed paths.
	exec 9>"$CACHE/lock"
	flock -w 900 9 || die "another conformance run holds $CACHE/lock"

	install_packages
	fetch_source
	build_suite

	final_cleanup # of an earlier run that was killed
	clean_suite_cgroups || die "the suite's cgroups are in use by processes this script did not start"
	# Only our own files: OUTPUT_DIR may be a directory that holds others.
	rm -rf --one-file-system "$out/tap"
	rm -f "$out"/{results.tsv,summary.md,summary.tsv,failures.tsv}
	mkdir -p "$RUN" "$out"
	echo "$real" >"$RUN/runtime-path"
	trap final_cleanup EXIT
	trap 'exit 130' INT TERM

	log "running $(find "$GOPKG_DIR/validation" -name '*.t' | wc -l) programs against $real ($(timeout 10 "$real" --version 2>/dev/null | head -n1 || true))"
	local start=$SECONDS
	unshare -m --propagation slave env HIDE_UNIFIED="${HIDE_UNIFIED:-auto}" \
		bash "$HERE/run.sh" __inner "$real" "$out" || die "the test loop itself failed"
	log "tests took $((SECONDS - start))s"
	final_cleanup

	"$PYTHON" "$HERE/tapsummary.py" --out "$out" --runtime "$name ($real)" \
		--suite "$(cat "$GOPKG_DIR/.pyrunc-version")" --expected "$HERE/expected.tsv"
}

case ${1:-} in
__inner)
	shift
	inner "$@"
	;;
__clean)
	hide_unified "$2" 2>/dev/null
	clean_containers "$RUN/state" "$2" >/dev/null
	;;
*) main "$@" ;;
esac
