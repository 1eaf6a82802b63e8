// graft — an HDF5 file as a data source: datasets with samples on their first axis (x, y, ...),
// read batch by batch. The rows of a batch are sorted and read as runs of consecutive rows
// (one hyperslab each), so a shuffled epoch reads only what it trains on and memory stays at a
// few batches whatever the file's size. Any numeric HDF5 type is converted to T by HDF5.
//
//   graft::data::H5Source<float> train("images.h5", {"x"}, {"y"});
//   model.fit(train, opts);
#pragma once

#include <H5Cpp.h>

#include <algorithm>
#include <mutex>
#include <numeric>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "graft/core/limits.hpp"
#include "graft/data/source.hpp"

namespace graft {
namespace data {

template <class T = float>
class H5Source : public Source<T> {
 public:
  /// Datasets `inputs` and `targets` (paths inside the file) of `path`; every one needs the
  /// same number of samples on its first axis.
  H5Source(std::string path, std::vector<std::string> inputs, std::vector<std::string> targets = {})
      : path_(std::move(path)), xn_(std::move(inputs)), yn_(std::move(targets)) {
    if (xn_.empty()) throw value_error(graft::detail::cat("H5Source '", path_, "': no input dataset named"));
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) throw io_error(graft::detail::cat("H5Source: cannot open '", path_, "': no such file"));
    if (!S_ISREG(st.st_mode)) throw io_error(graft::detail::cat("H5Source: '", path_, "' is not a regular file"));
    file_size_ = static_cast<double>(st.st_size);
    try {
      H5::Exception::dontPrint();
      file_ = H5::H5File(path_, H5F_ACC_RDONLY);
      for (auto* names : {&xn_, &yn_})
        for (const std::string& n : *names) open(n, names == &xn_);
    } catch (const H5::Exception& e) {
      throw format_error(graft::detail::cat("H5Source '", path_, "': ", e.getDetailMsg()));
    }
  }

  Index size() const override { return n_; }
  std::vector<Shape> input_shapes() const override { return xs_; }
  std::vector<Shape> target_shapes() const override { return ys_; }
  std::string describe() const override { return graft::detail::cat("HDF5 file '", path_, "' (", n_, " samples)"); }
  std::uint64_t fingerprint() const override {
    std::uint64_t h = detail::fnv_basis;
    detail::fnv_mix(h, path_);
    detail::fnv_mix(h, &file_size_, sizeof file_size_);
    detail::fnv_mix(h, &n_, sizeof n_);
    return h;
  }

  void load(const Index* rows, Index cnt, std::vector<Tensor<T>>& x, std::vector<Tensor<T>>& y) const override {
    std::lock_guard<std::mutex> lk(mu_);
    sort_rows(rows, cnt);
    x.resize(xd_.size());
    y.resize(yd_.size());
    for (size_t i = 0; i < xd_.size(); ++i) read(xd_[i], xs_[i], xn_[i], rows, cnt, x[i]);
    for (size_t j = 0; j < yd_.size(); ++j) read(yd_[j], ys_[j], yn_[j], rows, cnt, y[j]);
  }
  void load_targets(const Index* rows, Index cnt, std::vector<Tensor<T>>& y) const override {
    std::lock_guard<std::mutex> lk(mu_);
    sort_rows(rows, cnt);
    y.resize(yd_.size());
    for (size_t j = 0; j < yd_.size(); ++j) read(yd_[j], ys_[j], yn_[j], rows, cnt, y[j]);
  }

 private:
  void open(const std::string& name, bool input) {
    if (!file_.nameExists(name)) throw format_error(graft::detail::cat("H5Source '", path_, "': no dataset '", name, "'"));
    H5::DataSet d = file_.openDataSet(name);
    H5::DataSpace sp = d.getSpace();
    const int rank = sp.getSimpleExtentNdims();
    if (rank < 1 || rank > 8) throw format_error(graft::detail::cat("H5Source '", path_, "': dataset '", name, "' has rank ", rank, ", expected 1 to 8 with samples first"));
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    sp.getSimpleExtentDims(dims.data());
    const H5T_class_t cls = d.getTypeClass();
    if (cls != H5T_INTEGER && cls != H5T_FLOAT)
      throw format_error(graft::detail::cat("H5Source '", path_, "': dataset '", name, "' is not numeric"));
    Shape s;
    double per = 1;
    for (int k = 1; k < rank; ++k) {
      s.push_back(static_cast<Index>(dims[static_cast<size_t>(k)]));
      per *= static_cast<double>(dims[static_cast<size_t>(k)]);
    }
    if (per > static_cast<double>(graft::limits().max_tensor_elements))
      throw format_error(graft::detail::cat("H5Source '", path_, "': a sample of dataset '", name, "' has ", per,
                                            " elements, over graft::limits().max_tensor_elements"));
    const Index n = static_cast<Index>(dims[0]);
    if (xd_.empty() && yd_.empty()) n_ = n;
    else if (n != n_)
      throw shape_error(graft::detail::cat("H5Source '", path_, "': dataset '", name, "' has ", n, " samples, the first one ", n_));
    (input ? xd_ : yd_).push_back(d);
    (input ? xs_ : ys_).push_back(s);
  }
  void sort_rows(const Index* rows, Index cnt) const {
    order_.resize(static_cast<size_t>(cnt));
    std::iota(order_.begin(), order_.end(), Index(0));
    std::sort(order_.begin(), order_.end(), [&](Index a, Index b) { return rows[a] < rows[b]; });
    for (Index i = 0; i < cnt; ++i)
      if (rows[i] < 0 || rows[i] >= n_) throw value_error(graft::detail::cat(describe(), ": row ", rows[i], " out of range"));
  }
  /// Rows in sorted order, run by run, into `run_buf_`, then placed in the batch's order.
  void read(const H5::DataSet& d, const Shape& sample, const std::string& name, const Index* rows, Index cnt, Tensor<T>& out) const {
    out.resize_batch(batch_like(sample), cnt);
    const Index w = shape_size(sample);
    const int rank = static_cast<int>(sample.size()) + 1;
    std::vector<hsize_t> start(static_cast<size_t>(rank), 0), count(static_cast<size_t>(rank));
    for (int k = 1; k < rank; ++k) count[static_cast<size_t>(k)] = static_cast<hsize_t>(sample[static_cast<size_t>(k - 1)]);
    const H5::PredType& mem = sizeof(T) == sizeof(double) ? H5::PredType::NATIVE_DOUBLE : H5::PredType::NATIVE_FLOAT;
    try {
      H5::DataSpace fs = d.getSpace();
      for (Index a = 0; a < cnt;) {
        Index b = a + 1;  // rows[order_[a..b)] consecutive
        while (b < cnt && rows[order_[static_cast<size_t>(b)]] == rows[order_[static_cast<size_t>(b - 1)]] + 1) ++b;
        const Index first = rows[order_[static_cast<size_t>(a)]];
        start[0] = static_cast<hsize_t>(first);
        count[0] = static_cast<hsize_t>(b - a);
        fs.selectHyperslab(H5S_SELECT_SET, count.data(), start.data());
        H5::DataSpace ms(rank, count.data());
        run_buf_.resize(static_cast<size_t>((b - a) * w));
        d.read(run_buf_.data(), mem, ms, fs);
        for (Index r = a; r < b; ++r)
          std::copy(run_buf_.data() + (r - a) * w, run_buf_.data() + (r - a + 1) * w, out.data() + order_[static_cast<size_t>(r)] * w);
        a = b;
      }
    } catch (const H5::Exception& e) {
      throw io_error(graft::detail::cat("H5Source '", path_, "': reading dataset '", name, "' failed: ", e.getDetailMsg()));
    }
  }
  const Shape& batch_like(const Shape& sample) const {
    like_.assign(1, 1);
    like_.insert(like_.end(), sample.begin(), sample.end());
    return like_;
  }

  std::string path_;
  std::vector<std::string> xn_, yn_;
  double file_size_ = 0;
  H5::H5File file_;
  std::vector<H5::DataSet> xd_, yd_;
  std::vector<Shape> xs_, ys_;
  Index n_ = 0;
  mutable std::mutex mu_;
  mutable std::vector<Index> order_;
  mutable std::vector<T> run_buf_;
  mutable Shape like_;
};

}  // namespace data
}  // namespace graft
