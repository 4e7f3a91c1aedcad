// A std::vector whose new elements are zero without being written: storage comes from calloc (large
// blocks are fresh pages the kernel zeroes on first touch) and resize() does not construct elements.
// Allocating a model's 100 MB of parameters or Adam moments then costs no time until the pages are used,
// so constructing an engine on Node's main thread does not hold the event loop. For trivially
// constructible element types (float, double) only.
//
// On Linux, blocks of 4 MiB or more (parameters, gradients and Adam moments of a real model) get a
// mapping of their own, 2 MiB aligned and advised for transparent huge pages (MADV_HUGEPAGE; a no-op
// where THP is off): a 100 MB block is then about 50 page faults instead of 25,000 (each a TLB
// shoot-down across the training threads), and Adam's pass over it misses the TLB far less
// (bench/results/hugepages-side-by-side-intel-avx512bf16-2026-12-01.txt).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <new>
#include <type_traits>
#include <vector>
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace vaecf::cpu {

template <typename T>
struct ZeroedAllocator {
  static_assert(std::is_trivially_default_constructible_v<T> && std::is_trivially_destructible_v<T>);
  using value_type = T;
  ZeroedAllocator() = default;
  template <typename U>
  ZeroedAllocator(const ZeroedAllocator<U>&) noexcept {}
  static constexpr std::size_t kHugePage = std::size_t(2) << 20, kOwnMapping = std::size_t(4) << 20;
  T* allocate(std::size_t n) {
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_alloc();
#if defined(__linux__)
    if (n * sizeof(T) >= kOwnMapping) return static_cast<T*>(mapHugeAligned(mappedBytes(n)));
#endif
    void* p = std::calloc(n, sizeof(T));
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) noexcept {
#if defined(__linux__)
    if (n * sizeof(T) >= kOwnMapping) {
      munmap(p, mappedBytes(n));
      return;
    }
#endif
    std::free(p);
  }
  // resize(n) constructs with no arguments: leave calloc's zeros in place.
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <typename U>
  bool operator==(const ZeroedAllocator<U>&) const noexcept { return true; }
  template <typename U>
  bool operator!=(const ZeroedAllocator<U>&) const noexcept { return false; }

 private:
  static std::size_t mappedBytes(std::size_t n) { return (n * sizeof(T) + kHugePage - 1) / kHugePage * kHugePage; }
#if defined(__linux__)
  // Anonymous pages (zero until written), `bytes` at a 2 MiB boundary: map 2 MiB more, unmap the slack.
  static void* mapHugeAligned(std::size_t bytes) {
    void* raw = mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    const std::uintptr_t start = reinterpret_cast<std::uintptr_t>(raw);
    const std::uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
    if (aligned > start) munmap(raw, aligned - start);
    const std::uintptr_t end = start + bytes + kHugePage, used = aligned + bytes;
    if (end > used) munmap(reinterpret_cast<void*>(used), end - used);
#if defined(MADV_HUGEPAGE)
    madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);  // advice only: ignored where THP is off
#endif
    return reinterpret_cast<void*>(aligned);
  }
#endif
};

template <typename T>
using ZeroedVector = std::vector<T, ZeroedAllocator<T>>;

// v holds n zeros when it did not hold n elements (fresh storage: resize() after clear() would keep the
// old values, since construction writes nothing); kept as is when it already did.
template <typename T>
void ensureZeroed(ZeroedVector<T>& v, size_t n) {
  if (v.size() != n) ZeroedVector<T>(n).swap(v);
}

// Releases v's storage; the next ensureZeroed gives zeros again.
template <typename T>
void releaseZeroed(ZeroedVector<T>& v) {
  ZeroedVector<T>().swap(v);
}

}  // namespace vaecf::cpu
