#!/bin/sh
# The floor of file_read (issue #18): Debian's fio with its io_uring engine, the same work as
# ringloop's scenario: N random 4 KiB reads with O_DIRECT at queue depth DEPTH from the same
# 1 GiB file (RINGLOOP_BENCH_FILE), one job, no random map (each read draws its block, as
# ringloop's readers do). file_read_fixed adds --fixedbufs (READ_FIXED on registered buffers).
#   fio_peer.sh file_read|file_read_fixed N DEPTH
set -eu
scenario=$1 n=$2 depth=${3:-128}
file=${RINGLOOP_BENCH_FILE:-/var/tmp/ringloop-file-read.dat}
case $scenario in
  file_read) extra="" ;;
  file_read_fixed) extra="--fixedbufs=1" ;;
  *) echo "fio_peer: unknown scenario $scenario" >&2; exit 2 ;;
esac
# The file is written once by whichever system runs first (same content: fio reads it as is).
if [ ! -f "$file" ] || [ "$(stat -c %s "$file")" -lt 1073741824 ]; then
  fio --name=fill --filename="$file" --size=1G --rw=write --bs=1M --direct=1 >/dev/null
fi
# shellcheck disable=SC2086
out=$(fio --name=file_read --filename="$file" --size=1G --ioengine=io_uring --direct=1 \
  --rw=randread --bs=4k --iodepth="$depth" --number_ios="$n" --norandommap --randrepeat=0 \
  --numjobs=1 --thread --output-format=json $extra)
echo "$out" | /usr/bin/python3 -c '
import json, sys
job = json.load(sys.stdin)["jobs"][0]
read = job["read"]
wall_s = read["runtime"] / 1000.0
cpu_s = (job["usr_cpu"] + job["sys_cpu"]) / 100.0 * wall_s
print("peer=fio scenario=%s n=%s wall_s=%.3f cpu_s=%.3f iops=%.0f depth=%s direct=1 bs=4096"
      % (sys.argv[1], read["total_ios"], wall_s, cpu_s, read["iops"], sys.argv[2]))
' "$scenario" "$depth"
