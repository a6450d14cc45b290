#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, from Debian's packages: munge, MariaDB + slurmdbd (so sacct
# answers, which submitit reads job states from), slurmctld and slurmd. Run as root; idempotent: a
# cluster already up is left as it is. Used by `nox -s slurm` on CI and by hand:
#   sudo packages/evsys-slurm/ci/start-slurm.sh     # then: sinfo; sbatch --wrap 'hostname'
# Environment: EVSYS_SLURM_CPUS (default: nproc) CPUs the node offers; EVSYS_SLURM_LOG (default
# /var/log/slurm) where the daemons log.
set -euo pipefail

HOST=$(hostname -s)
CPUS=${EVSYS_SLURM_CPUS:-$(nproc)}
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
LOG=${EVSYS_SLURM_LOG:-/var/log/slurm}
CONF=/etc/slurm

# Up means every daemon answers: sacct fails while MariaDB or slurmdbd is down, and submitit needs it.
up() {
  scontrol ping 2>/dev/null | grep -q UP && sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' &&
    sacct -n -X -S now >/dev/null 2>&1
}
if command -v scontrol >/dev/null && up; then echo "slurm: already up"; sinfo; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "start-slurm.sh: run as root (it installs packages and starts daemons)" >&2; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurmdbd slurm-client munge mariadb-server >/dev/null
fi
mkdir -p "$CONF" "$LOG" /var/spool/slurmctld /var/spool/slurmd /run/munge /run/mysqld

# munge: the credential service every Slurm daemon and client uses.
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; }
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged

# MariaDB for slurmdbd (accounting: sacct).
chown mysql:mysql /run/mysqld
[ -d /var/lib/mysql/mysql ] || mysql_install_db --user=mysql --auth-root-authentication-method=socket >/dev/null
if ! pgrep -x mariadbd >/dev/null; then
  (mariadbd --user=mysql --skip-networking=0 --bind-address=127.0.0.1 >"$LOG/mariadb.log" 2>&1 &)
fi
for _ in $(seq 60); do mysqladmin ping --silent >/dev/null 2>&1 && break; sleep 0.5; done
mysql -u root <<'SQL'
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'evsys-slurm';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

cat >"$CONF/slurmdbd.conf" <<CFG
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile=$LOG/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=evsys-slurm
StorageLoc=slurm_acct_db
CFG
chmod 0600 "$CONF/slurmdbd.conf"

# One node offering $CPUS CPUs, two partitions on it: "debug" (the default) and "urgent", whose jobs
# preempt debug's by requeueing them (what a real cluster's preemption does, for the tests).
cat >"$CONF/slurm.conf" <<CFG
ClusterName=evsys
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
# a requeued job may start again after this many seconds (default 120): preemption tests stay short
AuthInfo=cred_expire=10
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
# schedule every second, not every minute: a requeued arm starts again promptly
SchedulerParameters=sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=256
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
MinJobAge=60
KillWait=5
InactiveLimit=0
MaxArraySize=10001
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=20
PartitionName=urgent Nodes=$HOST MaxTime=INFINITE State=UP PriorityTier=10
CFG

pgrep -x slurmdbd >/dev/null || slurmdbd
for _ in $(seq 60); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.5; done
sacctmgr -i -Q add cluster evsys >/dev/null 2>&1 || true
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 60); do up && break; sleep 0.5; done
scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
up || { echo "slurm did not come up; logs in $LOG" >&2; tail -n 20 "$LOG"/slurmctld.log "$LOG"/slurmd.log >&2; exit 1; }
sinfo
