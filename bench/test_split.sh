#!/usr/bin/env bash
# #15's test split through the node (only for a candidate chosen on validation, bench/val_check.sh):
#
#   bench/test_split.sh NAME MODEL_DIR                 # dsdrive_node with the model
#   AGENT=constant-velocity bench/test_split.sh constant-velocity -    # or expert
#
# 10 routes (seed 7) on each test town test-00..03, one town after another (the node and the simulator
# share the 2 cores), kept as bench/results/closed_loop/test-split/NAME-node-TOWN.{json,md} (references:
# NAME-TOWN.json). Rebuild the table with bench/town_table.py.
set -euo pipefail
name=${1:?NAME}; model=${2:?MODEL_DIR or -}
agent=${AGENT:-model}
cd "$(dirname "$0")/.."
. scripts/ros_env.sh
dest=bench/results/closed_loop/test-split
case $agent in model) model_args=(--model-dir "$model"); tag=$name-node ;; *) model_args=(); tag=$name ;; esac
work=$(mktemp -d)
for town in test-00 test-01 test-02 test-03; do
  dsdrive-eval --agent "$agent" "${model_args[@]}" --town "$town" --routes 10 --seed 7 --diagnose \
    --no-plots --no-progress --out "$work/$town" | tail -1
  cp "$work/$town/results.json" "$dest/$tag-$town.json"
  cp "$work/$town/summary.md" "$dest/$tag-$town.md"
done
rm -rf "$work"
