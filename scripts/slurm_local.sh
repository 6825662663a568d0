#!/usr/bin/env bash
# A single-node SLURM on this machine, to try `snakemake --profile profiles/slurm` before a cluster
# (and for the SLURM test). Debian/Ubuntu, as root, no systemd needed:
#   bash scripts/slurm_local.sh start    install munge + slurmctld + slurmd (apt-get), configure, start
#   bash scripts/slurm_local.sh status   show the daemons' PIDs and the node
#   bash scripts/slurm_local.sh stop     stop the daemons this script started (by their recorded PIDs)
#                                        and remove the config files it wrote
# The node gets this machine's CPUs and memory (`slurmd -C`), two partitions over it, `gpu` and `cpu`
# (config.yaml's `slurm:` block: jobs with GPUs, CPU-only jobs), and a fake GPU (gres.conf
# File=/dev/null) so `--gpus=N` jobs schedule.
# There is no slurmdbd, so `sacct` fails: run Snakemake with `--slurm-status-command squeue`
# (MinJobAge keeps finished jobs visible to squeue for an hour) and `--slurm-no-account`.
# Environment: MOTAB_SLURM_STATE (default /var/lib/motab-slurm: spool, state, logs, PID files),
# MOTAB_SLURM_GPUS (fake GPUs on the node, default 4).
set -euo pipefail

STATE=${MOTAB_SLURM_STATE:-/var/lib/motab-slurm}
GPUS=${MOTAB_SLURM_GPUS:-4}
CONF_DIR=/etc/slurm
MARK="# written by motab scripts/slurm_local.sh"

die() { echo "slurm_local.sh: $*" >&2; exit 1; }

install() {
    [ "$(id -u)" = 0 ] || die "needs root (apt-get, daemons); on a shared machine ask your admin for a SLURM"
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null; then
        return
    fi
    command -v apt-get >/dev/null || die "apt-get not found: install munge, slurmctld, slurmd, slurm-client by hand"
    export DEBIAN_FRONTEND=noninteractive
    packages="slurmctld slurmd slurm-client munge"
    apt-get install -y --no-install-recommends $packages >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends $packages >/dev/null; } \
        || die "apt-get install $packages failed"
}

write_config() {
    if [ -f "$CONF_DIR/slurm.conf" ] && ! grep -qF "$MARK" "$CONF_DIR/slurm.conf"; then
        die "$CONF_DIR/slurm.conf exists and was not written by this script; refusing to replace it"
    fi
    mkdir -p "$CONF_DIR" "$STATE"/{ctld,spool,log}
    # NodeName=... CPUs=... RealMemory=... as slurmd measures this machine (first line only).
    node=$(slurmd -C | head -n 1)
    name=$(echo "$node" | sed -E 's/^NodeName=([^ ]+).*/\1/')
    mem=$(echo "$node" | sed -E 's/.*RealMemory=([0-9]+).*/\1/')
    cpus=$(echo "$node" | sed -E 's/.*CPUs=([0-9]+).*/\1/')
    cat > "$CONF_DIR/slurm.conf" <<EOF
$MARK
ClusterName=motab-local
SlurmctldHost=$name
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default memory per CPU a job takes the whole node's memory and jobs run one at a time.
DefMemPerCPU=$((mem / cpus / 2))
# No slurmdbd here: squeue is the status source, so finished jobs must stay visible for a while.
MinJobAge=3600
ReturnToService=2
GresTypes=gpu
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
$node Gres=gpu:fake:$GPUS State=UNKNOWN
PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=cpu Nodes=ALL Default=NO MaxTime=INFINITE State=UP
EOF
    # Slurm counts a GPU per device file; empty files stand in for the devices.
    for i in $(seq 0 $((GPUS - 1))); do : > "$STATE/fakegpu$i"; done
    cat > "$CONF_DIR/gres.conf" <<EOF
$MARK
Name=gpu Type=fake File=$STATE/fakegpu[0-$((GPUS - 1))]
EOF
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
    install
    if ! alive "$STATE/slurmctld.pid"; then
        rm -rf "$STATE/ctld"  # a fresh controller: no jobs or drained node left from an earlier start
    fi
    write_config
    if ! alive "$STATE/munged.pid"; then
        mkdir -p /run/munge /var/log/munge /var/lib/munge
        chown munge:munge /run/munge /var/log/munge /var/lib/munge
        # munged forks into the background and writes its PID file itself.
        su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=/run/munge/munged.pid"
        cp /run/munge/munged.pid "$STATE/munged.pid"
    fi
    if ! alive "$STATE/slurmctld.pid"; then
        setsid slurmctld -D >"$STATE/log/slurmctld.out" 2>&1 < /dev/null &
        echo $! > "$STATE/slurmctld.pid"
    fi
    if ! alive "$STATE/slurmd.pid"; then
        setsid slurmd -D >"$STATE/log/slurmd.out" 2>&1 < /dev/null &
        echo $! > "$STATE/slurmd.pid"
    fi
    for _ in $(seq 60); do
        if sinfo -h -o "%t" 2>/dev/null | grep -qE "^(idle|mix|alloc)"; then
            echo "SLURM up: $(sinfo -h -o '%P %D %t %c cpus %m MB %G')"
            return
        fi
        sleep 0.5
    done
    tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
    die "the node did not become idle within 30 s (logs above)"
}

stop() {
    # Only the daemons this script started, by their recorded PIDs; the order lets slurmd go first.
    for daemon in slurmd slurmctld munged; do
        pidfile="$STATE/$daemon.pid"
        if alive "$pidfile"; then
            pid=$(cat "$pidfile")
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
            echo "stopped $daemon ($pid)"
        fi
        rm -f "$pidfile"
    done
    # A config naming a controller that is down makes every scontrol call wait ~9 s for it, and the
    # Snakemake SLURM plugin runs `scontrol show config` whenever Snakemake starts, profile or not.
    for conf in "$CONF_DIR/slurm.conf" "$CONF_DIR/gres.conf"; do
        if [ -f "$conf" ] && grep -qF "$MARK" "$conf"; then rm -f "$conf"; fi
    done
}

status() {
    for daemon in munged slurmctld slurmd; do
        if alive "$STATE/$daemon.pid"; then echo "$daemon running ($(cat "$STATE/$daemon.pid"))"
        else echo "$daemon not running"; fi
    done
    sinfo 2>/dev/null || true
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
