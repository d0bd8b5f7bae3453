#!/usr/bin/env bash
# testbed.sh - a local cluster of N simulated DGX Spark hosts for sparkrun's end-to-end tests.
#
# Usage: scripts/testbed.sh SUBCOMMAND [ARGS]
#   up N                 start hosts 1..N (idempotent; restarts crashed hosts; keeps hosts above N)
#   down [--purge] [--force]  stop every host, remove all traces; non-zero + a list if anything is left.
#                        Refuses while a pytest session uses the cluster (unless --force); --purge also drops
#                        the image cache and keys
#   status               one line per host (exit 0 only when every known host is healthy)
#   running              the IPs of the hosts that are up and healthy, one per line
#   hosts                the IPs of the hosts of the last `up`, one per line
#   exec HOST [CMD...]   run CMD inside HOST's namespaces (no ssh); one argument = a shell string
#   ssh HOST [CMD...]    plain OpenSSH to HOST with the testbed's ssh_config
#   delay HOST MS|off    add MS ms of latency to everything HOST sends (iptables NFQUEUE + nfq_delay.py)
#   shape HOST RATE|off  token-bucket bandwidth limit (e.g. 200mbit) on HOST's link, both directions;
#                        HOST `control` shapes the control machine's link tb0
#   link HOST up|down    plug/unplug HOST's cable (its switch port); HOST may be `control`
#   ib HOST on|off       fake InfiniBand/RoCE device for HOST (see "Fake InfiniBand" below) = state cx7=configured|absent
#   state HOST|all [FLAG...]  print a host's state, or change it for real on the running host (see "Host states")
#   registry start|stop|status|push NAME[:TAG]...   the image registry at 10.213.0.1:5000 (push = the engine image)
#   image [HOST...]      (re)build the stand-in engine image and load it where it is stale
#   cluster-file [DIR] [--user root|spark] [--name NAME]   write DIR/clusters/NAME.yaml (NAME testbed, user root;
#                        DIR defaults to the active sparkrun config dir)
#   leftovers            list anything a testbed left on this machine; exit 1 if there is something
#   mem                  PSS (KiB) of all testbed processes, containers included
# HOST may be 3, h3, tb-h3 or 10.213.0.13.
#
# Environment:
#   TB_STATE=/var/lib/sparkrun-testbed   state dir (keys, per-host dirs, logs, lock file, the engine rootfs and
#                                        each host's docker data root, kept across down/up so `up` need not
#                                        import the image again; `down --purge` removes them too).
#                                        Must not be under /tmp, /root or /run (each host mounts its own).
#   TB_FAKE_GPUS=1     at `up`: fake GPUs per host started by this `up` (nvidia-smi stub answering like a GB10
#                      + the nvidia-container-runtime-hook stub so `docker run --gpus ...` works); 0 = none.
#   TB_FAKE_IB=0       at `up`: 1 gives hosts started by this `up` the fake InfiniBand device.
#   TB_RETRIES=3       attempts per host at `up` (dockerd/containerd can time out under CPU load).
#   TB_READY_TIMEOUT=60  seconds a host may take to become ready; scaled up with the load average.
#   TB_PARALLEL=0      hosts started at once by `up` (0 = all).
#   TB_LOCK_TIMEOUT=900  seconds to wait for another testbed.sh holding the lock.
#   TB_FAST_KEX=1      sshd offers curve25519 key exchange only (~90 ms faster per ssh connection).
#   TB_HOST_STATE="FLAG..."    at `up`: state flags for every host `up` handles; TB_HOST_STATE_<i>: for host i
#                      (new hosts start with them, running hosts get them applied), e.g. TB_HOST_STATE_2="sudo=none".
#   TB_REGISTRY_UP=0   at `up`: 1 also starts the image registry (otherwise `registry start|push` start it).
#
# Layout (all addresses inside 10.213.0.0/24, no default route anywhere):
#   control machine  10.213.0.1 on veth tb0 (root namespace) <-> bridge br0 in netns tb-sw
#   host i           netns tb-h<i>, eth0 = 10.213.0.(10+i)/24 (veth tbv<i> on br0), i = 1..64
#   fake IB netdev   enp1s0f0np0 = 10.213.0.(100+i)/32 (a veth whose peer is unplugged) when `ib` is on
#   10.213.0.201     never assigned: use it as the "unreachable host" address while the testbed is up
# Each host also has its own mount, UTS and PID namespace (its own ps/kill view), a private /root, /home, /tmp, /run,
# /dev/shm, /etc/hosts and /etc/hostname, a fresh sysfs, its own sshd on <ip>:22 (key-only root login) and its
# own dockerd (containers under the cgroup /tb-h<i>). Host processes are in the pids cgroup tb-h<i>/init, so
# `down` can find and kill all of them. `docker run --network host` binds on the host's IP.
#
# Host states (`state HOST FLAG...`, TB_HOST_STATE[_<i>] at `up`; all real inside the host unless noted). Every
# host has root and a non-root user `spark` (uid = first id >= 1000 free on this machine), both reachable with the
# control machine's key. Prepared (the default, `prepared` restores it):
#   sudo=nopasswd      spark: passwordless sudo. `password`: sudo asks for spark's password; `none`: no sudo rights
#   password=PW        spark's password (default: none; `sudo=password` without it uses "spark")
#   docker-group=yes   spark in the docker group; `no`: the docker socket refuses spark
#   mesh=yes           (= mesh-root + mesh-user) own key pair, authorized on every other host, known_hosts of all;
#                      `no`: no key pair, no known_hosts, other hosts' keys not authorized (control -> host still works)
#   hf-cache=ok        ~spark/.cache/huggingface owned by spark; `root-owned`: owned by root (recursively)
#   cache-size=off     `64M`: a tmpfs of that size mounted on spark's HF cache; cache-fill=SIZE fills it (.testbed-fill)
#   earlyoom=yes       installed, enabled, running (a stand-in daemon); `no`: not installed (apt-get installs it)
#   cx7=absent         `configured` (= ib on) or `unconfigured`: CX7 netdev without address, MTU 1500
#   clock=0            `+300`/`-300`: `date`/`timedatectl` on the host are off by that many seconds (a stand-in:
#                      the kernel clock cannot be skewed per namespace)
# Per host: /etc (users, groups, shadow, sudoers, netplan), /usr/local/bin (stand-ins for systemctl, apt-get,
# dpkg, netplan, timedatectl) are overlays whose changes stay in $TB_STATE/h<i>, /home is private. A host's /etc,
# /usr/local/bin and homes survive its restart (`up` after a crash), as a disk would; `down` removes them.
#
# Fake InfiniBand (`ib HOST on` or TB_FAKE_IB=1), for the InfiniBand/RoCE detection code. Inside the host
# (ssh sessions, `exec`), exactly as on a DGX Spark with one ConnectX-7 port cabled:
#   /sys/class/infiniband/rocep1s0f0/ports/1/state              "4: ACTIVE"
#   /sys/class/infiniband/rocep1s0f0/ports/1/phys_state         "5: LinkUp"
#   /sys/class/infiniband/rocep1s0f0/ports/1/link_layer         "Ethernet"
#   /sys/class/infiniband/rocep1s0f0/ports/1/rate               "200 Gb/sec (4X HDR)"
#   /sys/class/infiniband/rocep1s0f0/ports/1/gids/{0..3}        0,1 = fe80::/64 link-local, 2,3 = ::ffff:<ib ip>
#   /sys/class/infiniband/rocep1s0f0/ports/1/gid_attrs/types/{0..3}  "IB/RoCE v1", "RoCE v2", "IB/RoCE v1", "RoCE v2"
#   /sys/class/infiniband/rocep1s0f0/ports/1/gid_attrs/ndevs/{0..3}  "enp1s0f0np0"
#   /sys/class/infiniband/rocep1s0f0/device/net/enp1s0f0np0     -> /sys/class/net/enp1s0f0np0
#   /sys/class/infiniband/rocep1s0f0/{node_type,fw_ver,hca_type,node_guid}
#   `ip -4 addr show enp1s0f0np0`                               inet 10.213.0.(100+i)/32
# The tree is a directory of plain files ($TB_STATE/h<i>/ib) bind-mounted on /sys/class/infiniband, which is
# possible because /sys/class in each host is a tmpfs holding bind mounts of the real class directories.
# Hosts reply to ARP for their IB address on eth0, so 10.213.0.(100+i) is reachable from the other hosts.
# Containers see it only with -v /sys/class/infiniband:/sys/class/infiniband (real containers get a fresh sysfs);
# /dev/infiniband is not faked (the host's /dev is shared with the control machine).
# shellcheck disable=SC2034 source-path=SCRIPTDIR  # the settings below are used by the sourced testbed/lib/*.sh
set -euo pipefail

# Close the descriptors we inherited (e.g. from `flock LOCKFILE cmd`): hosts and daemons started from here live on,
# and would hold such a lock for as long as they run, blocking every other test session. 255 is bash's own.
for fd_path in /proc/"$$"/fd/*; do
  fd=${fd_path##*/}
  if [ "$fd" -gt 2 ] && [ "$fd" -ne 255 ]; then
    eval "exec $fd>&-" 2>/dev/null || true
  fi
done
unset fd fd_path

TB_STATE=${TB_STATE:-/var/lib/sparkrun-testbed}
TB_STATE=${TB_STATE%/}
TB_NET=10.213.0                    # root ns = .1, host i = .(TB_BASE+i), IB dummy = .(100+i)
TB_BASE=10
TB_MAX_HOSTS=64
TB_SW=tb-sw                        # netns holding bridge br0
TB_ROOTIF=tb0                      # root-ns end of the uplink veth (peer tb0p sits on br0)
TB_IMAGE=sparkrun-test/engine:latest
TB_REGISTRY=$TB_NET.1:5000         # the image registry (lib/registry.sh), trusted over plain HTTP by every host
TB_HASH_LABEL=sparkrun.testbed.engine-hash
IB_DEV=rocep1s0f0
IB_IF=enp1s0f0np0
SYS_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
TB_SELF=$(readlink -f "${BASH_SOURCE[0]}")
TB_SRC=$(dirname "$TB_SELF")/testbed     # helper files and the stand-in engine sources
CLUSTER_DESC='local test cluster (scripts/testbed.sh)'

# The implementation (the hosts run a copy of all of it from $TB_STATE/bin). `shellcheck -x` (from scripts/) follows these.
# shellcheck source=testbed/lib/common.sh disable=SC1091
. "$TB_SRC/lib/common.sh"
# shellcheck source=testbed/lib/image.sh disable=SC1091
. "$TB_SRC/lib/image.sh"
# shellcheck source=testbed/lib/net.sh disable=SC1091
. "$TB_SRC/lib/net.sh"
# shellcheck source=testbed/lib/files.sh disable=SC1091
. "$TB_SRC/lib/files.sh"
# shellcheck source=testbed/lib/host.sh disable=SC1091
. "$TB_SRC/lib/host.sh"
# shellcheck source=testbed/lib/state.sh disable=SC1091
. "$TB_SRC/lib/state.sh"
# shellcheck source=testbed/lib/registry.sh disable=SC1091
. "$TB_SRC/lib/registry.sh"
# shellcheck source=testbed/lib/commands.sh disable=SC1091
. "$TB_SRC/lib/commands.sh"

usage() {
  sed -n '2,/^set -euo/p' "$TB_SELF" | sed '$d' | grep -v '^# shellcheck' | sed 's/^# \{0,1\}//'
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  status) cmd_status ;;
  running) cmd_running ;;
  hosts) cat "$TB_STATE/hosts" 2>/dev/null || true ;;
  exec) shift; cmd_exec "$@" ;;
  ssh) shift; cmd_ssh "$@" ;;
  delay) shift; cmd_delay "$@" ;;
  shape) shift; cmd_shape "$@" ;;
  link) shift; cmd_link "$@" ;;
  ib) shift; cmd_ib "$@" ;;
  state) shift; cmd_state "$@" ;;
  registry) shift; cmd_registry "$@" ;;
  image) shift; cmd_image "$@" ;;
  cluster-file)
    shift
    if (($#)) && [[ $1 != --* ]]; then d=$1; shift; else d=$(sparkrun_config_dir); fi
    write_cluster_file "$d" "$@" ;;
  leftovers) leftovers ;;
  mem) cmd_mem ;;
  __hostinit) shift; hostinit "$@" ;;
  __state_inside) shift; state_inside "$@" ;;
  -h | --help | help) usage ;;
  *) usage; exit 2 ;;
esac
