#!/usr/bin/env bash
# A real Slurm on localhost for tests: munge + slurmctld + slurmd from Debian's packages, with a config
# for this machine in a scratch directory. Usage: local-cluster.sh {start|stop|status|env}
# `start` prints nothing but a final "ready" line; `eval "$(local-cluster.sh env)"` points sbatch/squeue at it.
# Needs root (munge and slurmd run as root here, as on the machines this project tests on).
# RECUR_SLURM_NODES=N (default 0: one node named after this host) runs N nodes node1..nodeN, one
# `slurmd -N nodeK` each on its own port (Debian's slurmd is built with multiple-slurmd support).
# RECUR_SLURM_GPUS=G declares G GPUs per node as generic resources. They are not real devices: Slurm
# 22.05 drops a gres/gpu without File= ("Removing file-less GPU"), so each is a character device
# made here with the numbers of /dev/null, which nothing opens.
set -euo pipefail
DIR="${RECUR_SLURM_DIR:-/tmp/recur-slurm}"
CONF="$DIR/slurm.conf"
HOST="$(hostname -s)"
CPUS="$(nproc)"
MEM_MB="$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))"
CTLD_PORT="${RECUR_SLURM_CTLD_PORT:-16817}"
SLURMD_PORT="${RECUR_SLURM_SLURMD_PORT:-16818}"
NODES="${RECUR_SLURM_NODES:-0}"
GPUS="${RECUR_SLURM_GPUS:-0}"
[[ "$NODES" =~ ^[0-9]+$ && "$GPUS" =~ ^[0-9]+$ ]] || { echo "local-cluster: RECUR_SLURM_NODES and RECUR_SLURM_GPUS must be numbers" >&2; exit 1; }
# The node names, one slurmd each.
if (( NODES > 0 )); then NAMES="$(seq -s ' ' -f 'node%g' 1 "$NODES")"; else NAMES="$HOST"; fi

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
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
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
CONF
  local gres="" port="$SLURMD_PORT" names
  if (( GPUS > 0 )); then
    gres=" Gres=gpu:$GPUS"
    echo "GresTypes=gpu" >> "$CONF"
    mkdir -p "$DIR/dev"
    : > "$DIR/gres.conf"
    for n in $NAMES; do
      for g in $(seq 0 $(( GPUS - 1 ))); do
        [[ -c "$DIR/dev/$n-gpu$g" ]] || mknod "$DIR/dev/$n-gpu$g" c 1 3
      done
      echo "NodeName=$n Name=gpu File=$DIR/dev/$n-gpu[0-$(( GPUS - 1 ))]" >> "$DIR/gres.conf"
    done
  fi
  for n in $NAMES; do
    mkdir -p "$DIR/spool/$n"
    if (( NODES > 0 )); then
      echo "NodeName=$n NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$port CPUs=$CPUS RealMemory=$MEM_MB$gres State=UNKNOWN" >> "$CONF"
      port=$(( port + 1 ))
    else
      echo "NodeName=$n CPUs=$CPUS RealMemory=$MEM_MB$gres State=UNKNOWN" >> "$CONF"
    fi
  done
  names="$(echo $NAMES | tr ' ' ',')"
  echo "PartitionName=debug Nodes=$names Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES" >> "$CONF"
}

running() { [[ -f "$DIR/$1.pid" ]] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

cmd_start() {
  [[ $(id -u) -eq 0 ]] || die "must run as root"
  need slurmctld; need slurmd; need munged
  start_munge
  write_conf
  export SLURM_CONF="$CONF"
  running slurmctld || slurmctld -c -f "$CONF" || die "slurmctld failed (see $DIR/log/slurmctld.log)"
  for n in $NAMES; do
    if (( NODES > 0 )); then
      running "slurmd-$n" || slurmd -f "$CONF" -N "$n" || die "slurmd $n failed (see $DIR/log/slurmd-$n.log)"
    else
      running "slurmd-$n" || slurmd -f "$CONF" || die "slurmd failed (see $DIR/log/slurmd-$n.log)"
    fi
  done
  local want; want="$(echo $NAMES | wc -w)"
  for _ in $(seq 150); do
    ready="$(sinfo -h -N -o '%T' 2>/dev/null | grep -cE '^(idle|mixed|allocated)' || true)"
    if [[ "$ready" -ge "$want" ]]; then echo "ready: $NAMES ($CPUS CPUs$( (( GPUS > 0 )) && echo ", $GPUS GPUs" ) each), SLURM_CONF=$CONF"; return; fi
    sleep 0.2
  done
  die "nodes did not become idle ($(sinfo -h -N -o '%N %T' 2>/dev/null | tr '\n' ' '); see $DIR/log)"
}

cmd_stop() {
  for f in "$DIR"/slurmd-*.pid "$DIR"/slurmctld.pid; do
    [[ -f "$f" ]] && kill "$(cat "$f")" 2>/dev/null || true
  done
  for _ in $(seq 50); do
    local alive=0
    for f in "$DIR"/slurmd-*.pid "$DIR"/slurmctld.pid; do [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null && alive=1; done
    (( alive )) || break
    sleep 0.2
  done
  echo "stopped"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) export SLURM_CONF="$CONF"; running slurmctld && sinfo || { echo "not running"; exit 1; } ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) die "usage: local-cluster.sh {start|stop|status|env}" ;;
esac
