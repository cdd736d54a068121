#!/bin/sh
# Stop a twistedspy daemon (docs/operations.md, "Stopping"): send SIGINT to the pid in the
# pidfile, then wait until that process has exited.
#
# Usage: ./shutdown.sh [PIDFILE]     (default: twistd.pid)
# SHUTDOWN_WAIT sets the wait in seconds (default 30).
# Exit status: 0 stopped; 1 still running after the wait, or the signal could not be sent;
# 2 no pidfile or no valid pid in it; 3 the pid names no running process (stale pidfile).

pidfile=${1:-twistd.pid}
wait_seconds=${SHUTDOWN_WAIT:-30}

if [ ! -f "$pidfile" ]; then
    echo "shutdown.sh: no pidfile $pidfile (is twistedspy running, from this folder?)" >&2
    exit 2
fi
pid=$(tr -d ' \t\r\n' < "$pidfile")
case $pid in
    '' | *[!0-9]*)
        echo "shutdown.sh: $pidfile does not hold a process id" >&2
        exit 2
        ;;
esac
# kill -0 succeeds for a zombie too (exited, not yet reaped by its parent): that has stopped.
running() {
    kill -0 "$pid" 2>/dev/null || return 1
    case $(ps -o stat= -p "$pid" 2>/dev/null) in
        Z*) return 1 ;;
    esac
    return 0
}

if ! running; then
    echo "shutdown.sh: no process $pid is running; $pidfile is stale (remove it)" >&2
    exit 3
fi
if ! kill -INT "$pid"; then
    echo "shutdown.sh: could not signal process $pid" >&2
    exit 1
fi
echo "shutdown.sh: sent SIGINT to process $pid; waiting up to ${wait_seconds}s"

# Ten checks a second; `kill -0` fails once the process is gone.
ticks=$((wait_seconds * 10))
while running; do
    if [ "$ticks" -le 0 ]; then
        echo "shutdown.sh: process $pid did not stop within ${wait_seconds}s" >&2
        exit 1
    fi
    ticks=$((ticks - 1))
    sleep 0.1
done
echo "shutdown.sh: process $pid has stopped"
exit 0
