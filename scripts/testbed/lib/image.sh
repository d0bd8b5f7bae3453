# shellcheck shell=bash
# testbed lib: the stand-in engine image (rootfs build, content hash, import on hosts). Sourced by scripts/testbed.sh.
# shellcheck disable=SC2154  # settings come from scripts/testbed.sh

# ---------------------------------------------------------------- stand-in engine image
PY=/usr/bin/python3
engine_hash() { # content hash of everything that goes into the image
  {
    echo "engine-image-v1 $("$PY" -V 2>&1) $(busybox 2>&1 | head -1) $(bash --version | head -1)"
    (cd "$TB_SRC" && find engine fake-nvidia-smi -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 |
      LC_ALL=C sort -z | xargs -0 sha256sum)
    sed -n '/^build_rootfs() {/,/^}/p;/^ensure_image() {/,/^}/p' "${BASH_SOURCE[0]}"
  } | sha256sum | cut -c1-16
}

copy_libs() { # ROOT FILE...: copy the shared libraries FILEs need into ROOT
  local r=$1 f l
  shift
  for f in "$@"; do
    for l in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*'); do
      [ -e "$r$l" ] || install -D -m 755 "$(readlink -f "$l")" "$r$l"
    done
  done
}

# busybox-static + bash + Debian's python3 (stdlib only) + ssh + the stand-in engines, as a rootfs tar
build_rootfs() {
  local out=$1 r a py ver site
  command -v busybox >/dev/null || die "busybox-static is not installed (apt-get install busybox-static)"
  py=$(readlink -f "$PY")
  [ -x "$py" ] || die "$PY not found (Debian's python3 is needed to build the engine image)"
  ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  r=$(mktemp -d "$TB_STATE/cache/rootfs.XXXXXX")
  mkdir -p "$r"/{bin,etc,tmp,root,proc,sys,dev,run,opt,var/log,var/tmp,usr/lib,usr/local/bin}
  cp "$(command -v busybox)" "$r/bin/busybox"
  for a in $("$r/bin/busybox" --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
  ln -s bin "$r/sbin"
  ln -s ../bin "$r/usr/bin"
  ln -s ../bin "$r/usr/sbin"
  cp "$(readlink -f /bin/bash)" "$r/bin/bash"
  cp "$py" "$r/bin/python$ver"
  ln -sf "python$ver" "$r/bin/python3"
  ln -sf python3 "$r/bin/python"
  tar -C "/usr/lib/python$ver" --exclude=test --exclude=tests --exclude=idlelib --exclude=tkinter \
    --exclude=turtledemo --exclude=ensurepip --exclude=lib2to3 --exclude=distutils --exclude=pydoc_data \
    --exclude='config-*' --exclude=site-packages --exclude=dist-packages --exclude=venv --exclude=sqlite3 \
    --exclude=curses --exclude=dbm --exclude=xmlrpc --exclude='turtle*' -cf - . |
    (mkdir -p "$r/usr/lib/python$ver" && tar -C "$r/usr/lib/python$ver" -xf -)
  # drop extension modules nobody here needs (tests, terminals, databases, TLS: ~10 MB with their libraries)
  find "$r/usr/lib/python$ver/lib-dynload" \( -name '_test*' -o -name '_xx*' -o -name 'xxlimited*' \
    -o -name '_ctypes_test*' -o -name '_sqlite3*' -o -name '_dbm*' -o -name '_gdbm*' -o -name '_curses*' \
    -o -name 'nis.*' -o -name 'ossaudiodev*' -o -name 'audioop*' -o -name 'readline*' -o -name '_ssl*' \
    -o -name '_hashlib*' -o -name '_tkinter*' -o -name '_crypt*' \) -delete
  # an OpenSSH client: trtllm's multi-node head runs ranks in the worker containers over the hosts' SSH
  local ssh
  ssh=$(command -v ssh) || die "the OpenSSH client is not installed (apt-get install openssh-client)"
  install -D -m 755 "$(readlink -f "$ssh")" "$r/usr/local/bin/ssh"
  copy_libs "$r" /bin/bash "$py" "$r/usr/lib/python$ver"/lib-dynload/*.so "$ssh"
  site=$r/usr/local/lib/python$ver/dist-packages
  mkdir -p "$site"
  cp -r "$TB_SRC/engine/standin" "$TB_SRC/engine/shims/." "$site/"
  find "$site" -name __pycache__ -prune -exec rm -rf {} +
  "$py" -m compileall -q -j 1 -s "$r" -p / "$site" >/dev/null
  for a in vllm sglang llama-server rpc-server ray trtllm-serve trtllm-llmapi-launch mpirun max spark tokenary; do
    printf '#!/usr/bin/python3\nimport sys\n\nfrom standin.cli import main\n\nsys.exit(main(%s, sys.argv[1:]))\n' \
      "'$a'" >"$r/usr/local/bin/$a"
    chmod 755 "$r/usr/local/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  printf 'NAME="sparkrun testbed engine stand-in"\nID=sparkrun-testbed\n' >"$r/etc/os-release"
  chmod 1777 "$r/tmp" "$r/var/tmp"
  tar --numeric-owner --owner=0 --group=0 -C "$r" -cf "$out.tmp" .
  mv "$out.tmp" "$out"
  rm -rf "$r"
}

ENGINE_HASH=
ENGINE_TAR=
ensure_engine_tar() {
  ENGINE_HASH=$(engine_hash)
  ENGINE_TAR=$TB_STATE/cache/engine-$ENGINE_HASH.tar
  [ -s "$ENGINE_TAR" ] && return 0
  log "building the stand-in engine rootfs ($ENGINE_HASH)"
  local old
  for old in "$TB_STATE"/cache/engine-*.tar; do [ -e "$old" ] && rm -f "$old"; done
  build_rootfs "$ENGINE_TAR"
  log "engine rootfs: $(du -h "$ENGINE_TAR" | cut -f1)"
}

ensure_image() { # I: import the engine image on host I unless it is there with the current hash
  local i=$1 have
  have=$(hdocker "$i" image inspect -f "{{index .Config.Labels \"$TB_HASH_LABEL\"}}" "$TB_IMAGE" 2>/dev/null || true)
  [ "$have" = "$ENGINE_HASH" ] && return 0
  local old
  old=$(hdocker "$i" image inspect -f '{{.Id}}' "$TB_IMAGE" 2>/dev/null || true)
  hdocker "$i" import \
    --change "ENV PATH=$SYS_PATH" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV STANDIN_REQUIRE_GPU=1' \
    --change "LABEL $TB_HASH_LABEL=$ENGINE_HASH" \
    --change 'CMD ["/bin/bash"]' \
    "$ENGINE_TAR" "$TB_IMAGE" >/dev/null || return 1
  if [ -n "$old" ]; then hdocker "$i" rmi "$old" >/dev/null 2>&1 || true; fi # the stale one, unless in use
}
