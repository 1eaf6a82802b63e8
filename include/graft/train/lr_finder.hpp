// graft — the learning-rate range test (Smith 2015; fastai's lr_find): train on successive
// batches while the learning rate grows exponentially from start_lr to end_lr, record the
// smoothed loss, stop when it diverges, then put the model back exactly as it was. Suggestions
// as fastai makes them: valley (the default), minimum / 10, steepest descent.
#pragma once

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <limits>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "graft/io/atomic_file.hpp"
#include "graft/model/model.hpp"
#include "graft/train/training_state.hpp"

namespace graft {

struct LRFindOptions {
  double start_lr = 1e-7;
  double end_lr = 10.0;
  int num_it = 100;
  /// Smoothing of the loss (exponential moving average, debiased).
  double beta = 0.98;
  /// Stop once the smoothed loss exceeds stop_div_factor times its minimum (or is not finite).
  bool stop_div = true;
  double stop_div_factor = 4.0;
  Index batch_size = 32;
  /// Seed of the batch order; unset draws one from graft's global generator.
  std::optional<std::uint64_t> seed;
};

struct LRFindResult {
  std::vector<double> lrs;          ///< the learning rate of each step run
  std::vector<double> losses;       ///< smoothed loss after each step
  std::vector<double> raw_losses;   ///< the batch losses themselves
  double valley = 0;                ///< fastai's default suggestion (the longest valley)
  double minimum = 0;               ///< learning rate at the minimum smoothed loss, / 10
  double steep = 0;                 ///< learning rate where the loss falls fastest
  double suggestion() const { return valley; }
  /// "lr,loss,raw_loss" rows (written atomically, like every file graft writes).
  void write_csv(const std::string& path) const {
    std::ostringstream f;
    f << "lr,loss,raw_loss\n";
    f.precision(10);
    for (size_t i = 0; i < lrs.size(); ++i) f << lrs[i] << "," << losses[i] << "," << raw_losses[i] << "\n";
    detail::atomic_write_text(path, f.str());
  }
  /// The curve as an SVG plot (smoothed loss against log10 of the learning rate, the suggestion marked).
  void write_svg(const std::string& path, const std::string& title = "learning-rate range test") const {
    const LRFindResult& r = *this;
    const double W = 640, H = 400, L = 70, R = 20, T = 40, B = 50;
    std::vector<double> xs, ys;
    for (size_t i = 0; i < r.lrs.size(); ++i)
      if (std::isfinite(r.losses[i]) && r.lrs[i] > 0) xs.push_back(std::log10(r.lrs[i])), ys.push_back(r.losses[i]);
    std::ostringstream f;
    f << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">" << title << "</text>\n";
    if (xs.size() >= 2) {
      double x0 = std::floor(*std::min_element(xs.begin(), xs.end())), x1 = std::ceil(*std::max_element(xs.begin(), xs.end()));
      double y0 = *std::min_element(ys.begin(), ys.end()), y1 = *std::max_element(ys.begin(), ys.end());
      if (y1 - y0 < 1e-12) y1 = y0 + 1;
      const double pad = 0.05 * (y1 - y0);
      y0 -= pad, y1 += pad;
      auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
      auto py = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
      f << "<g stroke=\"#ccc\">\n";
      for (double e = x0; e <= x1 + 1e-9; e += 1)
        f << "<line x1=\"" << px(e) << "\" y1=\"" << T << "\" x2=\"" << px(e) << "\" y2=\"" << H - B << "\"/>\n";
      for (int k = 0; k <= 5; ++k) {
        double y = y0 + (y1 - y0) * k / 5.0;
        f << "<line x1=\"" << L << "\" y1=\"" << py(y) << "\" x2=\"" << W - R << "\" y2=\"" << py(y) << "\"/>\n";
      }
      f << "</g>\n";
      for (double e = x0; e <= x1 + 1e-9; e += 1)
        f << "<text x=\"" << px(e) << "\" y=\"" << H - B + 18 << "\" text-anchor=\"middle\">1e" << static_cast<int>(e) << "</text>\n";
      for (int k = 0; k <= 5; ++k) {
        double y = y0 + (y1 - y0) * k / 5.0;
        f << "<text x=\"" << L - 6 << "\" y=\"" << py(y) + 4 << "\" text-anchor=\"end\">" << std::fixed << std::setprecision(3) << y << std::defaultfloat << "</text>\n";
      }
      f << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 12 << "\" text-anchor=\"middle\">learning rate (log scale)</text>\n"
        << "<text x=\"16\" y=\"" << (T + H - B) / 2 << "\" text-anchor=\"middle\" transform=\"rotate(-90 16 " << (T + H - B) / 2
        << ")\">smoothed loss</text>\n<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"";
      for (size_t i = 0; i < xs.size(); ++i) f << px(xs[i]) << "," << py(ys[i]) << " ";
      f << "\"/>\n";
      if (r.suggestion() > 0) {
        const double sx = px(std::log10(r.suggestion()));
        f << "<line x1=\"" << sx << "\" y1=\"" << T << "\" x2=\"" << sx << "\" y2=\"" << H - B
          << "\" stroke=\"#d62728\" stroke-dasharray=\"5,4\"/>\n<text x=\"" << sx + 5 << "\" y=\"" << T + 14 << "\" fill=\"#d62728\">valley "
          << std::setprecision(3) << r.suggestion() << "</text>\n";
      }
    }
    f << "</svg>\n";
    detail::atomic_write_text(path, f.str());
  }
};

namespace detail {

/// fastai.callback.schedule: valley, minimum and steep on the recorded curve without its first
/// num_it/10 and last 5 points (when enough remain).
inline void lr_suggestions(LRFindResult& r, int num_it) {
  std::vector<double> lrs = r.lrs, ls = r.losses;
  const size_t skip_start = static_cast<size_t>(num_it / 10), skip_end = 5;
  if (lrs.size() > skip_start + skip_end + 2) {
    lrs.assign(r.lrs.begin() + static_cast<long>(skip_start), r.lrs.end() - static_cast<long>(skip_end));
    ls.assign(r.losses.begin() + static_cast<long>(skip_start), r.losses.end() - static_cast<long>(skip_end));
  }
  const size_t n = ls.size();
  if (n == 0) return;
  size_t imin = static_cast<size_t>(std::min_element(ls.begin(), ls.end()) - ls.begin());
  r.minimum = lrs[imin] / 10.0;
  r.steep = lrs[0];
  double best = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i + 1 < n; ++i) {
    double g = (ls[i + 1] - ls[i]) / (std::log(lrs[i + 1]) - std::log(lrs[i]));
    if (g < best) best = g, r.steep = lrs[i];
  }
  // valley: the longest decreasing subsequence, and a point a third of the way into its second half
  std::vector<size_t> lds(n, 1);
  size_t max_start = 0, max_end = 0;
  for (size_t i = 1; i < n; ++i)
    for (size_t j = 0; j < i; ++j) {
      if (ls[i] < ls[j] && lds[i] < lds[j] + 1) lds[i] = lds[j] + 1;
      if (lds[max_end] < lds[i]) {
        max_end = i;
        max_start = max_end - lds[max_end];
      }
    }
  const double sections = static_cast<double>(max_end - max_start) / 3.0;
  const size_t idx = std::min(n - 1, max_start + static_cast<size_t>(sections) + static_cast<size_t>(sections / 2));
  r.valley = lrs[idx];
}

}  // namespace detail

/// The range test on (x, y) with the model's own loss and optimizer. The model, its optimizer
/// (slots, iterations, learning rate or schedule) and its random generators are restored bit for
/// bit afterwards. value_error when the model is not compiled or has nothing to train.
template <class T>
LRFindResult lr_find(Model<T>& m, const std::vector<Tensor<T>>& x, const std::vector<Tensor<T>>& y, const LRFindOptions& o = {}) {
  if (!m.compiled()) throw value_error(detail::cat("lr_find: model '", m.name(), "' must be compiled first"));
  if (!(o.start_lr > 0) || !(o.end_lr > o.start_lr) || !std::isfinite(o.end_lr))
    throw value_error(detail::cat("lr_find: need 0 < start_lr < end_lr (finite), got ", o.start_lr, " and ", o.end_lr));
  if (o.num_it < 2) throw value_error(detail::cat("lr_find: num_it must be at least 2, got ", o.num_it));
  if (!(o.beta >= 0 && o.beta < 1)) throw value_error(detail::cat("lr_find: beta must be in [0, 1), got ", o.beta));
  if (o.batch_size <= 0) throw value_error("lr_find: batch_size must be positive");
  if (x.empty() || x[0].rank() == 0 || x[0].dim(0) == 0) throw value_error("lr_find: no training samples");
  bool trainable = false;
  for (Param<T>* p : m.trainable_weights()) trainable = trainable || p->lr_multiplier != 0;
  if (!trainable) throw value_error(detail::cat("lr_find: model '", m.name(), "' has no trainable weights (unfreeze some layers first)"));
  const Index n = x[0].dim(0);
  for (const auto& t : x)
    if (t.rank() == 0 || t.dim(0) != n) throw shape_error("lr_find: inputs have different numbers of samples");
  for (const auto& t : y)
    if (t.rank() == 0 || t.dim(0) != n) throw shape_error("lr_find: targets and inputs have different numbers of samples");

  auto snap = TrainingSnapshot<T>::take(m);
  auto& opt = *m.optimizer();
  LRFindResult r;
  try {
    Rng rng(o.seed ? *o.seed : next_seed());
    std::vector<Index> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), Index(0));
    Index pos = n;  // reshuffle at the start
    std::vector<Tensor<T>> bx(x.size()), by(y.size());
    double avg = 0, best = std::numeric_limits<double>::infinity();
    for (int i = 0; i < o.num_it; ++i) {
      const double lr = o.start_lr * std::pow(o.end_lr / o.start_lr, static_cast<double>(i) / static_cast<double>(o.num_it - 1));
      opt.set_learning_rate(lr);
      if (pos + o.batch_size > n) {  // a new pass: shuffle (the last incomplete batch is skipped)
        for (Index k = n - 1; k > 0; --k) std::swap(order[static_cast<size_t>(k)], order[static_cast<size_t>(rng.below(static_cast<std::uint64_t>(k + 1)))]);
        pos = 0;
      }
      const Index cnt = std::min(o.batch_size, n);
      auto gather = [&](const Tensor<T>& src, Tensor<T>& dst) {
        dst.resize_batch(src.shape(), cnt);
        const Index w = src.inner(1);
        for (Index r2 = 0; r2 < cnt; ++r2) {
          const Index row = order[static_cast<size_t>(pos + r2)];
          std::copy(src.data() + row * w, src.data() + (row + 1) * w, dst.data() + r2 * w);
        }
      };
      for (size_t j = 0; j < x.size(); ++j) gather(x[j], bx[j]);
      for (size_t j = 0; j < y.size(); ++j) gather(y[j], by[j]);
      pos += cnt;
      const double loss = m.train_on_batch(bx, by);
      avg = o.beta * avg + (1.0 - o.beta) * loss;
      const double smooth = avg / (1.0 - std::pow(o.beta, i + 1));
      r.lrs.push_back(lr);
      r.raw_losses.push_back(loss);
      r.losses.push_back(smooth);
      if (smooth < best) best = smooth;
      if (o.stop_div && (!std::isfinite(smooth) || smooth > o.stop_div_factor * best)) break;
    }
  } catch (...) {
    snap.restore(m);
    throw;
  }
  snap.restore(m);
  detail::lr_suggestions(r, o.num_it);
  return r;
}

template <class T>
LRFindResult lr_find(Model<T>& m, const Tensor<T>& x, const Tensor<T>& y, const LRFindOptions& o = {}) {
  return lr_find(m, std::vector<Tensor<T>>{x}, std::vector<Tensor<T>>{y}, o);
}

}  // namespace graft
