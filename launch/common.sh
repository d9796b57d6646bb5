# shellcheck shell=bash
# Helpers shared by the launch scripts (sourced, not run). Needs bash >= 4.4.
#
# The sourcing script sets DRY_RUN=0/1. Every external command (gcloud, ssh, tar) goes through
# `run`: with DRY_RUN=1 it prints the exact command (one shell-quoted line on stdout) instead of
# running it; otherwise it traces the same line on stderr, prefixed with "+ ", and runs it.

# quote ARG: ARG as one shell word: plain if it needs no quoting, else single-quoted (after the
# "--flag=" of a flag, which reads better and means the same to the shell).
quote() {
  local plain='^[A-Za-z0-9_./:=,@%+-]+$' flag='^(--[A-Za-z0-9_.-]+=)(.*)$'
  if [[ $1 =~ $plain ]]; then
    printf '%s' "$1"
  elif [[ $1 =~ $flag ]]; then
    printf '%s' "${BASH_REMATCH[1]}"
    quote "${BASH_REMATCH[2]}"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

# quote_all ARGS...: the arguments as one command line.
quote_all() {
  local out="" arg
  for arg in "$@"; do
    out+="${out:+ }$(quote "$arg")"
  done
  printf '%s' "$out"
}

# run CMD ARGS...: prints the command; executes it unless DRY_RUN=1.
run() {
  if [[ ${DRY_RUN:-0} == 1 ]]; then
    printf '%s\n' "$(quote_all "$@")"
    return 0
  fi
  printf '+ %s\n' "$(quote_all "$@")" >&2
  "$@"
}

# usage: prints the header comment of the calling script (from line 2 to the first blank line).
usage() {
  sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"
}

# die MESSAGE: the message and the usage on stderr, exit status 2.
die() {
  printf 'error: %s\n\n' "$1" >&2
  usage >&2
  exit 2
}

# require NAME VALUE: dies naming the --flag when VALUE is empty.
require() {
  [[ -n $2 ]] || die "--$1 is required"
}

# need_value FLAG ARGC: dies when a flag that takes a value is the last argument.
need_value() {
  [[ $2 -ge 2 ]] || die "$1 needs a value"
}

# run_bg PREFIX CMD ARGS...: like `run`, but starts the command in the background with each
# output line prefixed by "[PREFIX] " (stdin from /dev/null); its pid is appended to BG_PIDS.
BG_PIDS=()
run_bg() {
  local prefix=$1
  shift
  if [[ ${DRY_RUN:-0} == 1 ]]; then
    printf '%s\n' "$(quote_all "$@")"
    return 0
  fi
  printf '+ %s\n' "$(quote_all "$@")" >&2
  "$@" </dev/null > >(prefix_lines "$prefix") 2>&1 &
  BG_PIDS+=("$!")
}

# prefix_lines PREFIX: copies stdin to stdout, "[PREFIX] " before each line (drops the \r of ttys).
prefix_lines() {
  local line
  while IFS= read -r line || [[ -n $line ]]; do
    printf '[%s] %s\n' "$1" "${line%$'\r'}"
  done
}
