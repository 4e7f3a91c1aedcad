// What differs between the compilers and systems the engine builds on: GCC and Clang on Linux and macOS,
// MSVC on Windows; with or without OpenMP (Apple's Clang has none unless libomp is installed).
#pragma once

// A function compiled for more instructions than the baseline (chosen at run time by the dispatch in
// kernels.cpp). MSVC needs no attribute: it compiles any intrinsic anywhere.
#if defined(_MSC_VER) && !defined(__clang__)
#define VAECF_TARGET(features)
#else
#define VAECF_TARGET(features) __attribute__((target(features)))
#endif

// OpenMP: the pragmas are ignored without it, and these calls mean one thread.
#ifdef _OPENMP
#include <omp.h>
#else
inline int omp_get_max_threads() { return 1; }
inline int omp_get_thread_num() { return 0; }
inline void omp_set_num_threads(int) {}
#endif
