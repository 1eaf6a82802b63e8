// A test layer for row slicing (Layer::parallel_rows): an identity that records the batch sizes it
// is run on, throws on batches of fewer than fail_below_ rows, and says parallel_rows as told.
#pragma once

#include <graft/graft.hpp>

#include <algorithm>
#include <mutex>
#include <set>
#include <string>

namespace graft_test {
using namespace graft;

class RowProbe : public UnaryLayer<float> {
 public:
  RowProbe(bool rows, std::string name) : UnaryLayer<float>(std::move(name)), rows_(rows) {}
  std::string class_name() const override { return "RowProbe"; }
  bool parallel_rows(bool) const override { return rows_; }
  Shape output_shape(const Shape& in) const override { return in; }
  void forward1(const Tensor<float>& x, Tensor<float>& y, CallState*, bool) override {
    {
      std::lock_guard<std::mutex> lock(m_);
      seen_.insert(x.dim(0));
    }
    if (x.dim(0) < fail_below_) throw value_error("RowProbe: told to fail");
    y.resize(x.shape());
    std::copy(x.begin(), x.end(), y.begin());
  }
  void backward1(const Tensor<float>&, const Tensor<float>&, const Tensor<float>& dy, Tensor<float>* dx,
                 CallState*) override {
    if (dx) *dx = dy;
  }
  std::set<Index> take_seen() {
    std::lock_guard<std::mutex> lock(m_);
    std::set<Index> s;
    s.swap(seen_);
    return s;
  }
  bool rows_;
  Index fail_below_ = 0;

 private:
  std::mutex m_;
  std::set<Index> seen_;
};

}  // namespace graft_test
