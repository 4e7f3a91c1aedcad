// A std::vector whose new elements are zero without being written: storage comes from calloc (large
// blocks are fresh pages the kernel zeroes on first touch) and resize() does not construct elements.
// Allocating a model's 100 MB of parameters or Adam moments then costs no time until the pages are used,
// so constructing an engine on Node's main thread does not hold the event loop. For trivially
// constructible element types (float, double) only.
#pragma once
#include <cstdlib>
#include <new>
#include <type_traits>
#include <vector>

namespace vaecf::cpu {

template <typename T>
struct ZeroedAllocator {
  static_assert(std::is_trivially_default_constructible_v<T> && std::is_trivially_destructible_v<T>);
  using value_type = T;
  ZeroedAllocator() = default;
  template <typename U>
  ZeroedAllocator(const ZeroedAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    void* p = std::calloc(n, sizeof(T));
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) noexcept { std::free(p); }
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
