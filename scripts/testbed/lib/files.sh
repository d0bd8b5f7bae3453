# shellcheck shell=bash
# testbed lib: files the testbed writes for clients (ssh_config, known_hosts, hosts, sparkrun cluster files) and for
# each host (homes, sshd_config, /etc/hosts, daemon.json, the /usr/local/bin stand-ins). Sourced by scripts/testbed.sh.
# shellcheck disable=SC2154  # settings come from scripts/testbed.sh

# ---------------------------------------------------------------- client and host files
known_indices() { # indices with a host key, ascending (builtins only: called for every host at every `up`)
  local f n idx=()
  for f in "$TB_STATE"/keys/host*_ed25519; do
    n=${f##*/host}
    n=${n%_ed25519}
    if [[ $n =~ ^[0-9]+$ ]]; then idx[10#$n]=$n; fi
  done
  if ((${#idx[@]})); then printf '%s\n' "${idx[@]}"; fi
}
running_indices() {
  local d i
  for d in "$TB_STATE"/h[0-9]*; do
    [ -d "$d" ] || continue
    i=${d##*/h}
    [[ $i =~ ^[0-9]+$ ]] && [ -e "/run/netns/$(ns_of "$i")" ] && init_alive "$i" && echo "$i"
  done | sort -n
  return 0
}

write_client_files() {
  local i kh=$TB_STATE/known_hosts cfg=$TB_STATE/ssh_config
  for i in $(known_indices); do
    echo "$(ip_of "$i"),tb-h$i $(cut -d' ' -f1,2 "$TB_STATE/keys/host${i}_ed25519.pub")"
  done >"$kh.tmp"
  mv "$kh.tmp" "$kh"
  {
    echo "# sparkrun testbed: ssh -F $cfg tb-h1  (or root@$(ip_of 1)), or 'Include $cfg' in ~/.ssh/config"
    for i in $(known_indices); do printf 'Host tb-h%s\n  HostName %s\n' "$i" "$(ip_of "$i")"; done
    cat <<EOF
Host $TB_NET.* tb-h*
  User root
  IdentityFile $TB_STATE/keys/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $kh
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5
# Multiplexing is off by default; enable per call with:
#   -o ControlMaster=auto -o ControlPath=$TB_STATE/cm/%C -o ControlPersist=60
EOF
  } >"$cfg.tmp"
  mv "$cfg.tmp" "$cfg"
}

write_hosts_file() { # the hosts that are up
  local i
  for i in $(running_indices); do ip_of "$i"; done >"$TB_STATE/hosts.tmp"
  mv "$TB_STATE/hosts.tmp" "$TB_STATE/hosts"
}

# cluster-file DIR [--user USER] [--name NAME]: the sparkrun cluster NAME (default testbed), connecting as USER
# (root, or the hosts' non-root user; read by `sparkrun cluster ...`/`--cluster NAME`)
write_cluster_file() {
  local dir=$1 user=root name=testbed f hosts
  shift
  while (($#)); do
    case $1 in
      --user) user=${2:?--user USER}; shift ;;
      --name) name=${2:?--name NAME}; shift ;;
      *) die "usage: cluster-file [DIR] [--user root|$TB_USER] [--name NAME]" ;;
    esac
    shift
  done
  [ "$user" = root ] || [ "$user" = "$TB_USER" ] || die "--user: the hosts have root and $TB_USER"
  [[ $name =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "bad cluster name '$name'"
  f=$dir/clusters/$name.yaml
  hosts=$(paste -sd, "$TB_STATE/hosts" 2>/dev/null | sed 's/,/, /g')
  mkdir -p "$dir/clusters"
  cat >"$f.tmp" <<EOF
name: $name
description: $CLUSTER_DESC
hosts: [$hosts]
ssh:
  user: $user
  port: 22
  identity_file: $TB_STATE/keys/id_ed25519
  options:                    # each becomes \`ssh -o Key=Value\`
    UserKnownHostsFile: $TB_STATE/known_hosts
    StrictHostKeyChecking: "yes"
    IdentitiesOnly: "yes"
  connect_timeout: 5
container:
  ulimits: {}                 # this VM's hard limits reject memlock=-1 / nofile=65535
  shm_size: 1g
EOF
  mv "$f.tmp" "$f"
}
sparkrun_config_dir() { echo "${SPARKRUN_CONFIG_DIR:-${XDG_CONFIG_HOME:-$HOME/.config}/sparkrun}"; }

# per-host homes (root's and the user's, with ~/.ssh as the state says), sshd_config, /etc/hosts, the dirs of the
# host's /etc and /usr/local/bin overlays (its "disk": kept across a host restart, removed by `down`).
# Bind-mounted single files (hosts, hostname) are rewritten in place (same inode), directories may be replaced.
write_host_files() {
  local i=$1 H ip j
  H=$(hdir "$i")
  ip=$(ip_of "$i")
  mkdir -p "$H"/{home/.ssh,home/.cache/huggingface,run/sshd,tmp,shm,log,.mnt/cg,.mnt/class} "$(ddir "$i")"
  mkdir -p "$H"/{etc.upper,etc.work,bin.upper,bin.work}
  chmod 700 "$H/home" "$H/home/.ssh"
  chmod 755 "$H/run" "$H/run/sshd"
  chmod 1777 "$H/tmp" "$H/shm"
  write_user_files "$i"
  [ -f "$H/home/.bashrc" ] || cp /etc/skel/.bashrc "$H/home/.bashrc" 2>/dev/null || true
  echo "tb-h$i" >"$H/hostname"
  {
    echo "127.0.0.1 localhost"
    echo "::1 localhost ip6-localhost ip6-loopback"
    for j in $(known_indices); do echo "$(ip_of "$j") tb-h$j"; done
  } >"$H/hosts"
  printf '{"insecure-registries": ["%s"]}\n' "$TB_REGISTRY" >"$H/daemon.json"
  local kex=
  [ "${TB_FAST_KEX:-1}" = 1 ] && kex="KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org"
  cat >"$H/sshd_config" <<EOF
Port 22
ListenAddress $ip
AddressFamily inet
HostKey $TB_STATE/keys/host${i}_ed25519
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile .ssh/authorized_keys
StrictModes yes
MaxStartups 100:30:200
MaxSessions 100
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding yes
AcceptEnv LANG LC_*
SetEnv TB_HOST=tb-h$i
$kex
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
}

# I GPUS: what the host's /usr/local/bin adds to the control machine's (an overlay; installs land in $H/bin.upper):
# the stand-ins for the host's system tools (systemctl, apt-get, dpkg, netplan, timedatectl; payloads in .testbed/)
# and, with GPUS > 0, the nvidia-smi + container hook stubs
setup_fakebin() {
  local i=$1 n=$2 H
  H=$(hdir "$i")
  rm -rf "$H/fakebin"
  if ((n == 0)); then cp -a "$TB_STATE/bin/fakebin" "$H/fakebin"; return 0; fi
  # dockerd registers its "nvidia" device driver (so `docker run --gpus ...` works) only if this hook is on its
  # PATH when it starts. The stub also copies nvidia-smi into containers started with --gpus, like the real one.
  cp -a "$TB_STATE/bin/fakebin" "$H/fakebin"
  cp "$TB_STATE/bin/fake-nvidia-smi" "$H/fakebin/nvidia-smi"
  cp "$TB_STATE/bin/nvidia-container-runtime-hook" "$H/fakebin/nvidia-container-runtime-hook"
  echo "$n" >"$H/fakebin/.tb-fake-gpus"
}
