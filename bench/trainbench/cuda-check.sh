#!/bin/sh
# Builds aicp-trainbench with its CUDA path outside autotools, the way the
# Makefile.am rules do (see docs/trainbench.md, "The CUDA path"), into
# OUT (default /tmp/tb-cuda): once with NCCL when nccl.h is found and once
# without, warnings as errors, then runs the result with --device cuda.
# On a machine without a GPU that run must fail cleanly (exit 1 and a
# message); on one with GPUs it trains resnet-tiny and runs a small GEMM
# check. Usage: bench/trainbench/cuda-check.sh [CUDA_DIR] (from the top of
# the source tree).
set -eu

CUDA=${1:-/usr/local/cuda}
OUT=${OUT:-/tmp/tb-cuda}
NVCC="$CUDA/bin/nvcc"
CC=${CC:-gcc}
SRC=bench/trainbench
WARN="-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wwrite-strings -Wformat=2"
# sm_70 is gone from nvcc 13; sm_75 T4, sm_80 A100, sm_86/89 A10/L4/L40,
# sm_90 H100/H200, sm_100 B200, sm_120 RTX Blackwell, plus PTX for newer.
GENCODE="-gencode arch=compute_75,code=sm_75 -gencode arch=compute_80,code=sm_80
 -gencode arch=compute_86,code=sm_86 -gencode arch=compute_89,code=sm_89
 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_100,code=sm_100
 -gencode arch=compute_120,code=sm_120 -gencode arch=compute_120,code=compute_120"

CPU_SRCS="tb_main tb_util tb_pool tb_gemm tb_layers tb_model tb_data tb_cli tb_run tb_report"
CUDA_SRCS="tb_cuda tb_cuda_net"

mkdir -p "$OUT"
echo "nvcc: $NVCC"
"$NVCC" --version | tail -n 2
"$NVCC" -O2 -std=c++17 $GENCODE -Xcompiler "-fPIC -Wall -Wextra -Werror" -I"$SRC" \
    -c "$SRC/tb_cuda_kern.cu" -o "$OUT/tb_cuda_kern.o"

build() { # $1: variant name, $2: extra CPPFLAGS, $3: extra libraries
    dir="$OUT/$1"
    mkdir -p "$dir"
    for f in $CPU_SRCS $CUDA_SRCS; do
        $CC -std=c11 -O2 $WARN -D_GNU_SOURCE -DAICP_TB_CUDA $2 -isystem "$CUDA/include" \
            -I"$SRC" -c "$SRC/$f.c" -o "$dir/$f.o"
    done
    $CC -o "$dir/aicp-trainbench" "$dir"/*.o "$OUT/tb_cuda_kern.o" -L"$CUDA/lib64" \
        -Wl,-rpath,"$CUDA/lib64" -lcudnn -lcublasLt -lcudart $3 -lstdc++ -lm \
        -lpthread
    echo "built $dir/aicp-trainbench"
}

build plain "" ""
if [ -f "$CUDA/include/nccl.h" ] || [ -f /usr/include/nccl.h ]; then
    build nccl "-DAICP_TB_NCCL" "-lnccl"
fi

for bin in "$OUT"/*/aicp-trainbench; do
    echo "== $bin --device cuda --model resnet-tiny --steps 5 --warmup 2"
    set +e
    "$bin" --device cuda --model resnet-tiny --steps 5 --warmup 2
    rc=$?
    set -e
    echo "exit status $rc"
    if [ "$rc" -eq 0 ]; then
        "$bin" --gemm-check --size 4096 --iters 10
    fi
done
