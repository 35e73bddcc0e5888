#!/usr/bin/env bash
# A real single-node Slurm on localhost for tests: munge + slurmctld + slurmd from Debian's packages,
# with a config for this machine in a scratch directory. Usage: local-cluster.sh {start|stop|status|env}
# `start` prints nothing but a final "ready" line; `eval "$(local-cluster.sh env)"` points sbatch/squeue at it.
# Needs root (munge and slurmd run as root here, as on the machines this project tests on).
set -euo pipefail
DIR="${RECUR_SLURM_DIR:-/tmp/recur-slurm}"
CONF="$DIR/slurm.conf"
HOST="$(hostname -s)"
CPUS="$(nproc)"
MEM_MB="$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))"
CTLD_PORT="${RECUR_SLURM_CTLD_PORT:-16817}"
SLURMD_PORT="${RECUR_SLURM_SLURMD_PORT:-16818}"

die() { echo "local-cluster: $*" >&2; exit 1; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: install Debian's slurm-wlm and munge (scripts/setup does)"; }

start_munge() {
  if [[ -f /run/munge/munged.pid ]] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; then return; fi
  install -d -o munge -g munge -m 0700 /etc/munge
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  su -s /bin/sh munge -c "/usr/sbin/munged" || die "munged failed to start"
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.1; done
  die "munge does not answer (munge -n | unmunge)"
}

write_conf() {
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
  cat > "$CONF" <<CONF
ClusterName=recur-local
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldTimeout=30
SlurmdTimeout=30
KillWait=10
MinJobAge=600
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
}

running() { [[ -f "$DIR/$1.pid" ]] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

cmd_start() {
  [[ $(id -u) -eq 0 ]] || die "must run as root"
  need slurmctld; need slurmd; need munged
  start_munge
  write_conf
  export SLURM_CONF="$CONF"
  running slurmctld || slurmctld -c -f "$CONF" || die "slurmctld failed (see $DIR/log/slurmctld.log)"
  running slurmd || slurmd -f "$CONF" || die "slurmd failed (see $DIR/log/slurmd.log)"
  for _ in $(seq 100); do
    state="$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)"
    if [[ "$state" == idle* || "$state" == mixed* || "$state" == allocated* ]]; then echo "ready: $HOST ($CPUS CPUs), SLURM_CONF=$CONF"; return; fi
    sleep 0.2
  done
  die "node did not become idle (state '${state:-none}'; see $DIR/log)"
}

cmd_stop() {
  for d in slurmd slurmctld; do
    if running "$d"; then kill "$(cat "$DIR/$d.pid")" 2>/dev/null || true; fi
  done
  for _ in $(seq 50); do running slurmd || running slurmctld || break; sleep 0.2; done
  echo "stopped"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) export SLURM_CONF="$CONF"; running slurmctld && running slurmd && sinfo || { echo "not running"; exit 1; } ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) die "usage: local-cluster.sh {start|stop|status|env}" ;;
esac
