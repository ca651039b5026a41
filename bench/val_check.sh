#!/usr/bin/env bash
# #15's validation mid-route check (model selection only; never a test town):
#
#   bench/val_check.sh NAME MODEL_DIR [ROUTES]      # ROUTES a town, default 6 (seeds 7000..)
#   AGENT=constant-velocity bench/val_check.sh constant-velocity - [ROUTES]   # or expert, expert-pid
#
# Drives ROUTES routes of at most 90 s on val-rand-0 and spider5 (the two towns side by side, one core
# each) and keeps each town's dsdrive-eval results as
# bench/results/closed_loop/val-midroute/NAME[-rROUTES]-TOWN.{json,md} (the suffix only when ROUTES is
# not 6, the size of the published table). Rebuild the table with bench/town_table.py. Route seeds are
# fixed (--seed 7): the first 6 of 12 routes are the 6 of the published table.
set -euo pipefail
name=${1:?NAME}; model=${2:?MODEL_DIR or -}; routes=${3:-6}
agent=${AGENT:-model-inprocess}
cd "$(dirname "$0")/.."
. scripts/ros_env.sh
dest=bench/results/closed_loop/val-midroute
tag=$name; [ "$routes" = 6 ] || tag=$name-r$routes
work=$(mktemp -d)
case $agent in model|model-inprocess) model_args=(--model-dir "$model") ;; *) model_args=() ;; esac
for town in val-rand-0 spider5; do
  dsdrive-eval --agent "$agent" "${model_args[@]}" --town "$town" --routes "$routes" --seed 7 \
    --max-steps 900 --diagnose --no-plots --no-progress --out "$work/$town" > "$work/$town.log" 2>&1 &
done
wait
for town in val-rand-0 spider5; do
  cp "$work/$town/results.json" "$dest/$tag-$town.json"
  cp "$work/$town/summary.md" "$dest/$tag-$town.md"
  tail -1 "$work/$town.log"
done
rm -rf "$work"
