#!/bin/sh
# A single-node Slurm cluster under a folder, for tests/slurm/run.sh (also usable by hand):
#   . tests/slurm/cluster.sh; cluster_start DIR; srun ...; cluster_stop
# munged, slurmctld and slurmd run as root, in the foreground of background jobs with their
# standard input from /dev/null (slurmd's task launches fail otherwise), with a minimal
# slurm.conf (NodeName=localhost CPUs=2, select/cons_tres), ports drawn from the PID so
# that two clusters on one machine do not collide, and are stopped by their PIDs.

# Waits up to $2 tenths of a second for the command $1 to succeed.
cluster_wait() {
  i=0
  until eval "$1" > /dev/null 2>&1; do
    i=$((i + 1))
    [ $i -ge "$2" ] && return 1
    sleep 0.1
  done
}

cluster_start() {
  C=$1
  rm -rf "$C/state" "$C/spool"   # a stale state would bring back old jobs and nodes
  mkdir -p "$C/state" "$C/spool" "$C/munge"
  chmod 700 "$C/munge"
  head -c 1024 /dev/urandom > "$C/munge/key"
  chmod 400 "$C/munge/key"
  port=$((20000 + ($$ % 2000) * 2))
  cat > "$C/slurm.conf" <<CONF
ClusterName=aectest
SlurmctldHost=localhost
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$C/munge/socket
CredType=cred/munge
StateSaveLocation=$C/state
SlurmdSpoolDir=$C/spool
SlurmctldPidFile=$C/slurmctld.pid
SlurmdPidFile=$C/slurmd.pid
SlurmctldLogFile=$C/slurmctld.log
SlurmdLogFile=$C/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
KillOnBadExit=1
ReturnToService=2
NodeName=localhost CPUs=2 State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$C/slurm.conf"
  munged --foreground --force --key-file="$C/munge/key" --socket="$C/munge/socket" \
    --pid-file="$C/munge/pid" --log-file="$C/munge/log" --seed-file="$C/munge/seed" < /dev/null > /dev/null 2>&1 &
  munged_pid=$!
  cluster_wait "[ -S '$C/munge/socket' ]" 50 || { echo "munged did not start: $(cat "$C/munge/log")" >&2; return 1; }
  slurmctld -D -i -f "$C/slurm.conf" < /dev/null > "$C/slurmctld.out" 2>&1 &
  slurmctld_pid=$!
  # slurmd and sinfo wait a second before they retry a controller that does not listen yet
  cluster_wait "ss -ltn | grep -q ':$port '" 100 || { echo "slurmctld does not listen: $(cat "$C/slurmctld.log")" >&2; return 1; }
  slurmd -D -N localhost -f "$C/slurm.conf" < /dev/null > "$C/slurmd.out" 2>&1 &
  slurmd_pid=$!
  cluster_wait "sinfo -h -N -o %T | grep -qx idle" 100 ||
    { echo "the node did not become idle: $(sinfo -N 2>&1) $(tail -5 "$C/slurmctld.log" "$C/slurmd.log")" >&2; return 1; }
}

cluster_stop() {
  for p in ${slurmd_pid:-} ${slurmctld_pid:-} ${munged_pid:-}; do
    kill "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  slurmd_pid="" slurmctld_pid="" munged_pid=""
}
