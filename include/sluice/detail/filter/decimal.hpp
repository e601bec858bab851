// sluice/detail/filter/decimal.hpp: a JSON number's text -> the nearest double, usable in
// constant expressions (the bounds of `numeric` in compile-time patterns are converted at compile
// time; run-time patterns use the same function, so both round a bound identically).
// Correctly rounded (round half to even, as std::from_chars): a first approximation in double
// arithmetic (exact for at most 15 digits and |exponent| <= 22, Clinger's fast path), then
// corrected by comparing the decimal value exactly with the midpoints between neighbouring doubles
// (big-integer arithmetic). Digits after the 800th only matter as "non-zero" (a sticky digit):
// no midpoint between two doubles needs more than 767 significant digits.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "sluice/config.hpp"

SLUICE_BEGIN_NAMESPACE
namespace detail::filter {

/// A non-negative integer below 2^4352, enough for every comparison decimal_to_double makes.
class big_uint {
 public:
  constexpr big_uint() = default;
  constexpr explicit big_uint(std::uint64_t v) {
    while (v != 0) {
      limbs_[size_++] = static_cast<std::uint32_t>(v);
      v >>= 32;
    }
  }
  /// *this = *this * m + add.
  constexpr void multiply_add(std::uint32_t m, std::uint32_t add) {
    std::uint64_t carry = add;
    for (std::size_t i = 0; i < size_; ++i) {
      const std::uint64_t x = std::uint64_t{limbs_[i]} * m + carry;
      limbs_[i] = static_cast<std::uint32_t>(x);
      carry = x >> 32;
    }
    if (carry != 0) limbs_[size_++] = static_cast<std::uint32_t>(carry);
  }
  constexpr void multiply_pow10(std::uint32_t e) {
    constexpr std::uint32_t small[] = {1,      10,      100,      1000,     10000,
                                       100000, 1000000, 10000000, 100000000};
    for (; e >= 9; e -= 9) multiply_add(1000000000u, 0);
    if (e != 0) multiply_add(small[e], 0);
  }
  constexpr void shift_left(std::uint32_t bits) {
    if (size_ == 0) return;
    const std::size_t words = bits / 32;
    const std::uint32_t b = bits % 32;
    if (b != 0) {
      std::uint32_t carry = 0;
      for (std::size_t i = 0; i < size_; ++i) {
        const std::uint32_t x = limbs_[i];
        limbs_[i] = x << b | carry;
        carry = x >> (32 - b);
      }
      if (carry != 0) limbs_[size_++] = carry;
    }
    if (words != 0) {
      for (std::size_t i = size_; i-- > 0;) limbs_[i + words] = limbs_[i];
      for (std::size_t i = 0; i < words; ++i) limbs_[i] = 0;
      size_ += words;
    }
  }
  friend constexpr int compare(const big_uint& a, const big_uint& b) {
    if (a.size_ != b.size_) return a.size_ < b.size_ ? -1 : 1;
    for (std::size_t i = a.size_; i-- > 0;)
      if (a.limbs_[i] != b.limbs_[i]) return a.limbs_[i] < b.limbs_[i] ? -1 : 1;
    return 0;
  }

 private:
  std::array<std::uint32_t, 136> limbs_{};
  std::size_t size_ = 0;
};

/// A double as m * 2^k (m < 2^53); infinity as 2^1024, the value just above the largest double.
struct binary_parts {
  std::uint64_t m;
  int k;
};
constexpr binary_parts parts_of(double x) {
  const auto bits = std::bit_cast<std::uint64_t>(x);
  const auto exponent = static_cast<int>(bits >> 52 & 0x7FF);
  const std::uint64_t fraction = bits & ((std::uint64_t{1} << 52) - 1);
  if (exponent == 0) return {fraction, -1074};
  return {fraction | std::uint64_t{1} << 52, exponent - 1075};
}

/// 10^e in double arithmetic, e >= 0 (within a few ulps; exact up to 10^22).
constexpr double pow10_approx(int e) {
  double r = 1, base = 10;
  while (e != 0) {
    if ((e & 1) != 0) r *= base;
    e >>= 1;
    if (e != 0) base *= base;
  }
  return r;
}

/// The decimal number digits * 10^exponent (digits: '0'..'9', no leading zero).
struct decimal_digits {
  static constexpr std::size_t max_digits = 800;
  std::array<char, max_digits + 1> digits{};
  std::size_t count = 0;
  long exponent = 0;
};

/// A JSON number's text (-?int(.frac)?([eE][+-]?exp)?) -> the nearest double, ties to even;
/// +-infinity beyond the largest double, +-0 below half the smallest subnormal.
constexpr double decimal_to_double(std::string_view t) {
  decimal_digits d;
  std::size_t i = 0;
  const bool negative = i < t.size() && t[i] == '-';
  if (negative) ++i;
  bool truncated = false;
  auto take = [&](char c, bool fraction) {
    if (c == '0' && d.count == 0) {
      if (fraction) --d.exponent;
      return;
    }
    if (d.count < decimal_digits::max_digits) {
      d.digits[d.count++] = c;
      if (fraction) --d.exponent;
    } else {
      truncated |= c != '0';
      if (!fraction) ++d.exponent;
    }
  };
  for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) take(t[i], false);
  if (i < t.size() && t[i] == '.')
    for (++i; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) take(t[i], true);
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    bool exp_negative = false;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) exp_negative = t[i++] == '-';
    long e = 0;
    for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i)
      if (e < 100000) e = e * 10 + (t[i] - '0');
    d.exponent += exp_negative ? -e : e;
  }
  const double zero = negative ? -0.0 : 0.0;
  if (d.count == 0) return zero;
  if (truncated) {  // a sticky digit: the value is strictly above the kept digits
    d.digits[d.count++] = '1';
    --d.exponent;
  }
  const long lead = d.exponent + static_cast<long>(d.count) - 1;  // 10^lead <= value < 10^(lead+1)
  constexpr auto infinity = std::bit_cast<double>(std::uint64_t{0x7FF0000000000000});
  if (lead >= 309) return negative ? -infinity : infinity;  // >= 1e309
  if (lead < -324) return zero;

  // First approximation from the first 19 digits.
  std::uint64_t w = 0;
  const std::size_t used = d.count < 19 ? d.count : 19;
  for (std::size_t k = 0; k < used; ++k) w = w * 10 + static_cast<std::uint64_t>(d.digits[k] - '0');
  const long e10 = d.exponent + static_cast<long>(d.count - used);
  auto x = static_cast<double>(w);
  if (d.count <= 15 && e10 >= -22 && e10 <= 22) {  // exact operands: one correctly rounded step
    x = e10 >= 0 ? x * pow10_approx(static_cast<int>(e10))
                 : x / pow10_approx(static_cast<int>(-e10));
    return negative ? -x : x;
  }
  constexpr auto largest_double = std::bit_cast<double>(std::uint64_t{0x7FEFFFFFFFFFFFFF});
  if (e10 >= 0) {
    // Overflow is not a constant expression: the correction below decides about infinity.
    const double p = pow10_approx(static_cast<int>(e10));
    x = x > largest_double / p ? largest_double : x * p;
  } else {
    long e = -e10;
    if (e > 300) {  // in two steps: 10^-e alone would underflow
      x /= pow10_approx(300);
      e -= 300;
    }
    x /= pow10_approx(static_cast<int>(e));
  }

  // Exact correction: compare the decimal with the midpoint of two neighbouring doubles.
  big_uint digits;
  for (std::size_t k = 0; k < d.count; ++k)
    digits.multiply_add(10, static_cast<std::uint32_t>(d.digits[k] - '0'));
  auto versus_midpoint = [&](double lo, double hi) {
    const binary_parts a = parts_of(lo), b = parts_of(hi);
    const int k = a.k < b.k ? a.k : b.k;
    big_uint left = digits;
    big_uint right((a.m << (a.k - k)) + (b.m << (b.k - k)));  // midpoint: right * 2^(k-1)
    if (d.exponent >= 0)
      left.multiply_pow10(static_cast<std::uint32_t>(d.exponent));
    else
      right.multiply_pow10(static_cast<std::uint32_t>(-d.exponent));
    if (k - 1 >= 0)
      right.shift_left(static_cast<std::uint32_t>(k - 1));
    else
      left.shift_left(static_cast<std::uint32_t>(1 - k));
    return compare(left, right);
  };
  constexpr auto largest = std::uint64_t{0x7FEFFFFFFFFFFFFF};
  auto bits = std::bit_cast<std::uint64_t>(x);
  for (int step = 0; step < 256; ++step) {
    const auto here = std::bit_cast<double>(bits);
    const auto up = std::bit_cast<double>(bits + 1);  // infinity after the largest
    const int above = versus_midpoint(here, up);
    if (above > 0 || (above == 0 && (bits & 1) != 0)) {
      ++bits;
      if (bits > largest || above == 0) break;
      continue;
    }
    if (above == 0 || bits == 0) break;
    const auto down = std::bit_cast<double>(bits - 1);
    const int below = versus_midpoint(down, here);
    if (below < 0 || (below == 0 && (bits & 1) != 0)) {
      --bits;
      if (below == 0) break;
      continue;
    }
    break;
  }
  const auto r = std::bit_cast<double>(bits);
  return negative ? -r : r;
}

}  // namespace detail::filter
SLUICE_END_NAMESPACE
