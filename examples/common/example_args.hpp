// Command-line helpers shared by graft's example programs: a usage error exits with status 2 and
// a one-line message naming the program and the flag; numbers are parsed strictly.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <string>

namespace example_args {

/// The program name printed before every usage error; set it first thing in main().
inline std::string& program_name() {
  static std::string name = "example";
  return name;
}

[[noreturn]] inline void usage_error(const std::string& m) {
  std::cerr << program_name() << ": " << m << "\n(--help lists the options)\n";
  std::exit(2);
}

/// An integer in [lo, hi], the whole of v.
inline long parse_int(const std::string& flag, const std::string& v, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  long r = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0 || r < lo || r > hi)
    usage_error(flag + " expects an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + v + "'");
  return r;
}

/// A finite positive number, the whole of v.
inline double parse_double(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  double r = std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || !(r > 0) || !std::isfinite(r))
    usage_error(flag + " expects a positive number, got '" + v + "'");
  return r;
}

}  // namespace example_args
