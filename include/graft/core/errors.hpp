// graft — error types. Every failure a user can cause raises one of these.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace graft {

/// Base of every exception graft throws. what() reads "[graft.<kind>] <message>".
class error : public std::runtime_error {
 public:
  error(const std::string& kind, const std::string& message)
      : std::runtime_error("[graft." + kind + "] " + message), kind_(kind) {}
  const std::string& kind() const noexcept { return kind_; }
  /// The message without the "[graft.kind] " prefix.
  std::string message() const {
    std::string w = what();
    size_t p = w.find("] ");
    return p == std::string::npos ? w : w.substr(p + 2);
  }

 private:
  std::string kind_;
};

/// Cannot open, read or write a file.
class io_error : public error {
 public:
  explicit io_error(const std::string& m) : error("io", m) {}
};
/// Not a Keras file, malformed HDF5 or JSON, missing attribute.
class format_error : public error {
 public:
  explicit format_error(const std::string& m) : error("format", m) {}
};
/// A layer, option or version graft does not handle.
class unsupported_error : public error {
 public:
  explicit unsupported_error(const std::string& m) : error("unsupported", m) {}
};
/// Weights or inputs of the wrong shape.
class shape_error : public error {
 public:
  explicit shape_error(const std::string& m) : error("shape", m) {}
};
/// A bad argument.
class value_error : public error {
 public:
  explicit value_error(const std::string& m) : error("value", m) {}
};

/// Re-throw `e` as the same kind of error with "<prefix>: " in front of its message
/// (used to add the file name to errors raised deeper down).
[[noreturn]] inline void rethrow_with_prefix(const error& e, const std::string& prefix) {
  const std::string m = prefix + ": " + e.message();
  const std::string& k = e.kind();
  if (k == "io") throw io_error(m);
  if (k == "format") throw format_error(m);
  if (k == "unsupported") throw unsupported_error(m);
  if (k == "shape") throw shape_error(m);
  if (k == "value") throw value_error(m);
  throw error(k, m);
}

namespace detail {
inline void format_into(std::ostringstream&) {}
template <class A, class... R>
void format_into(std::ostringstream& os, A&& a, R&&... r) {
  os << std::forward<A>(a);
  format_into(os, std::forward<R>(r)...);
}
/// Concatenate anything streamable into a string.
template <class... A>
std::string cat(A&&... a) {
  std::ostringstream os;
  format_into(os, std::forward<A>(a)...);
  return os.str();
}
}  // namespace detail

}  // namespace graft
