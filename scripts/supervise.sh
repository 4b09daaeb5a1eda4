# Sourced by scripts/run.sh: start servers in the background and keep them running.
#   start ROLE LOG COMMAND...   run COMMAND in the background (appending to LOG) as ROLE
#   supervise                   until every server is gone: when one exits, say so and call
#                               `restart ROLE` (the caller defines it) after a back-off of 1, 2, 4,
#                               8, 16, then 30 s between attempts (back to 1 s once it had been up
#                               for more than 60 s)
# The PIDs are in `pids` (the caller's cleanup stops them); a server's role in `role_of[PID]`.
declare -p pids >/dev/null 2>&1 || pids=()
declare -A role_of=() started_at=() restarts=()

start() {
  local role=$1 log=$2
  shift 2
  "$@" >>"$log" 2>&1 &
  pids+=($!)
  role_of[$!]=$role
  started_at[$!]=$SECONDS
}

# The next server that has ended: its PID in `ended`, its exit status in `status`. One that ended
# while the supervisor slept a back-off was already reaped by bash, and `wait -n` would refuse the
# whole list ("no such job") and never see it: those are looked for first (`wait PID` still gives
# a reaped child's status).
next_ended() {
  local pid
  ended= status=0
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      ended=$pid
      wait "$pid" 2>/dev/null || status=$?
      return 0
    fi
  done
  wait -n -p ended "${pids[@]}" 2>/dev/null || status=$?
}

supervise() {
  local role remaining pid n delay
  while [ ${#pids[@]} -gt 0 ]; do
    next_ended
    role=${role_of[$ended]:-}
    [ -n "$role" ] || continue  # wait was interrupted (a signal), or a child raced the check
    remaining=()
    for pid in "${pids[@]}"; do [ "$pid" = "$ended" ] || remaining+=("$pid"); done
    pids=("${remaining[@]}")
    unset "role_of[$ended]"
    n=$((${restarts[$role]:-0} + 1))
    if [ $((SECONDS - ${started_at[$ended]:-0})) -gt 60 ]; then n=1; fi  # it had been up: no back-off
    restarts[$role]=$n
    unset "started_at[$ended]"
    delay=$((n < 6 ? 1 << (n - 1) : 30))
    echo "==> $role (pid $ended) exited with status $status; starting it again in $delay s (restart $n)" >&2
    sleep "$delay"
    restart "$role"
  done
}
