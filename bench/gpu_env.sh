#!/usr/bin/env bash
# Sourced by bench/gpu_check.sh and bench/gpu_node_check.sh on the bare GPU machine (needs NVCC and a
# log function): OpenBLAS and oneDNN from the system, or from Debian's .debs carried in .gpu-debs and
# unpacked into a private folder (unpacking into / can break the image); cuBLAS from the toolkit, or only
# its files from the nvidia-cublas Python package (never the whole Python CUDA folder ahead of the
# toolkit's own headers). Sets DEPS and EXTRA (CMake flags naming them), CUBLAS_LIB_DIR and
# LD_LIBRARY_PATH (for programs that load them at run time).

# ---- OpenBLAS, oneDNN, Highway: Debian's carried in .gpu-debs (unless VAECF_SYSTEM_LIBS=1), unpacked into a private folder
# (unpacking into / can break the image) and named to CMake explicitly ----
DEPS=()
if [ -d .gpu-debs ] && [ -z "${VAECF_SYSTEM_LIBS:-}" ]; then
  R=/tmp/vaecf-debs
  mkdir -p "$R"
  for d in .gpu-debs/*.deb; do
    if command -v dpkg > /dev/null; then dpkg -x "$d" "$R"
    else python3 - "$d" "$R" <<'PY'
# dpkg -x without dpkg: a .deb is an ar archive holding data.tar.*
import io, sys, tarfile
data = open(sys.argv[1], "rb").read()
pos = 8
while pos < len(data):
    name, size = data[pos:pos + 16].decode().strip(), int(data[pos + 48:pos + 58])
    body = data[pos + 60:pos + 60 + size]
    if name.startswith("data.tar"):
        tarfile.open(fileobj=io.BytesIO(body)).extractall(sys.argv[2])
    pos += 60 + size + (size & 1)
PY
    fi
  done
  L=$R/usr/lib/x86_64-linux-gnu
  DEPS=(-DOPENBLAS_LIB="$L/openblas-pthread/libopenblas.so" -DCBLAS_INCLUDE="$R/usr/include/x86_64-linux-gnu/openblas-pthread"
        -DDNNL_LIB="$L/libdnnl.so" -DDNNL_INCLUDE="$R/usr/include" -DHWY_INCLUDE="$R/usr/include")
  export LD_LIBRARY_PATH="$L/openblas-pthread:$L${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  log "OpenBLAS, oneDNN and Highway from .gpu-debs (unpacked in $R)"
fi

# ---- cuBLAS: the toolkit's when it has it, else only its files from the nvidia-cublas Python package,
# never the whole Python CUDA folder ahead of the toolkit's own headers ----
CUDA_HOME_DIR=$(dirname "$(dirname "$(readlink -f "$NVCC")")")
EXTRA=()
CUBLAS_LIB_DIR=$CUDA_HOME_DIR/lib64
if [ -f "$CUDA_HOME_DIR/include/cublas_v2.h" ] && ls "$CUDA_HOME_DIR"/lib64/libcublas.so* > /dev/null 2>&1; then
  log "cuBLAS from the toolkit ($CUDA_HOME_DIR)"
else
  P=/tmp/vaecf-cuda-libs
  rm -rf "$P" && mkdir -p "$P/include" "$P/lib"
  ROOTS=$(python3 -c "import nvidia, sys; print(' '.join(nvidia.__path__))" 2>/dev/null)
  for root in $ROOTS; do
    find "$root" -name 'cublas*.h' -path '*/include/*' -exec cp -n {} "$P/include/" \;
    find "$root" \( -name 'libcublas.so*' -o -name 'libcublasLt.so*' \) -path '*/lib/*' \
      -exec cp -n {} "$P/lib/" \;
  done
  for lib in "$P"/lib/lib*.so.*; do base="${lib%%.so.*}.so"; [ -e "$base" ] || ln -s "$(basename "$lib")" "$base"; done
  log "cuBLAS from the Python packages in: $ROOTS"
  ls "$P/lib" | tr '\n' ' '; echo
  EXTRA=(-DVAECF_CUDA_LIBS="$P")
  CUBLAS_LIB_DIR=$P/lib
fi
export LD_LIBRARY_PATH="$CUBLAS_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
