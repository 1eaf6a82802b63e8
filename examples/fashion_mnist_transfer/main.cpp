// Fashion-MNIST shirt-vs-sandal transfer learning, end to end, as in Hands-On Machine Learning
// (Géron, ch. 11, "Reusing Pretrained Layers" / "Transfer Learning with Keras"), and honest about
// how much transfer actually helps: B and B-on-A are run for several seeds.
//
//   Task A: the 8 classes other than sandal (5) and shirt (6); labels 7, 8, 9 -> 5, 6, 7.
//           Model A: Flatten(28x28) -> Dense 300, 100, 50, 50, 50 (selu) -> Dense(8, softmax),
//           SGD(1e-3), sparse_categorical_crossentropy, 20 epochs; saved as my_model_A.h5.
//   Task B: sandal vs shirt (shirt = 1), trained on the first 200 B images only.
//           Model B from scratch: same trunk, Dense(1, sigmoid), SGD(1e-3), 20 epochs.
//           Model B on A: load my_model_A.h5, clone it (model A untouched), reuse every layer but
//           the last, add Dense(1, sigmoid); frozen for 4 epochs, then unfrozen for 16; saved as
//           my_model_B_on_A.h5. Learning rates as the seed notes' recipe and the printed book:
//           the frozen phase compiled with optimizer="sgd" (SGD's default, 0.01), the unfrozen one
//           with SGD(1e-4). The book's companion notebook uses SGD(1e-3) in both phases: run that
//           with --lr-frozen 1e-3 --lr-unfrozen 1e-3.
//
// Data split as the book: the first 5000 training images are the validation set, the other
// 55000 the training set; the test set is the 10000 test images.
#include <graft/data/dataset.hpp>
#include <graft/data/idx.hpp>
#include <graft/graft.hpp>

#include "../common/example_args.hpp"
#include "../common/fashion_mnist.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fs = std::filesystem;
using graft::Index;
using graft::Shape;
using graft::Tensor;
using graft::data::Dataset;
using Clock = std::chrono::steady_clock;

namespace {

const char* const kUsage = R"(Usage: fashion_mnist_transfer [options]

Fashion-MNIST shirt-vs-sandal transfer learning (Hands-On ML ch. 11), with graft.

Options:
  --data-dir DIR   Fashion-MNIST *-ubyte.gz files (default /usr/share/datasets/fashion-mnist,
                   installed by `apt-get install dataset-fashion-mnist`)
  --out-dir DIR    where my_model_A.h5, my_model_B_on_A.h5 and results.json go (default .)
  --model-a PATH   start from this Keras model A (.h5) instead of training one (skips task A)
  --epochs-a N     epochs for model A (default 20)
  --seeds N        seeds for model B and B-on-A (default 5)
  --seed S         first seed (default 42); seeds are S, S+1, ...
  --lr-frozen LR   B on A learning rate while the reused layers are frozen (default 0.01, "sgd")
  --lr-unfrozen LR B on A learning rate after unfreezing (default 1e-4)
                   The defaults are the seed notes' and the printed book's recipe; the book's
                   notebook, which produced its figures, uses SGD(1e-3) in both phases.
  --threads N      threads for matrix products (default 1: for this small MLP with batches of
                   32, threads cost more than they bring, and far more on a busy machine)
  --quiet          no progress lines or model summaries, just the results
  --check          exit non-zero unless: every B-on-A beats 85% test accuracy, my_model_A.h5 and
                   my_model_B_on_A.h5 reload with identical predictions, and model A was left
                   untouched by the B-on-A training (used by the test suite)
  --help           this text
)";

struct Args {
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::string out_dir = ".";
  std::string model_a;
  int epochs_a = 20;
  int seeds = 5;
  std::uint64_t seed = 42;
  double lr_frozen = 0.01;
  double lr_unfrozen = 1e-4;
  int threads = 1;
  bool quiet = false;
  bool check = false;
};

using example_args::parse_double;
using example_args::parse_int;
using example_args::usage_error;

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(f + " needs a value");
      return argv[++i];
    };
    if (f == "--help" || f == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (f == "--data-dir") a.data_dir = value();
    else if (f == "--out-dir") a.out_dir = value();
    else if (f == "--model-a") a.model_a = value();
    else if (f == "--epochs-a") a.epochs_a = static_cast<int>(parse_int(f, value(), 0, 100000));
    else if (f == "--seeds") a.seeds = static_cast<int>(parse_int(f, value(), 1, 10000));
    else if (f == "--seed") a.seed = static_cast<std::uint64_t>(parse_int(f, value(), 0, std::numeric_limits<int>::max()));
    else if (f == "--lr-frozen") a.lr_frozen = parse_double(f, value());
    else if (f == "--lr-unfrozen") a.lr_unfrozen = parse_double(f, value());
    else if (f == "--threads") a.threads = static_cast<int>(parse_int(f, value(), 1, 1024));
    else if (f == "--quiet") a.quiet = true;
    else if (f == "--check") a.check = true;
    else usage_error("unknown option '" + f + "'");
  }
  return a;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string fmt(double v, int prec) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(prec) << v;
  return os.str();
}
std::string pct(double v, int prec = 2) { return fmt(100.0 * v, prec) + "%"; }
std::string secs(double s) { return fmt(s, 1) + " s"; }

struct Splits {
  Dataset<float> train_a, valid_a, test_a;
  Dataset<float> train_b, valid_b, test_b;
  Index train_b_available = 0;
};

/// The book's split_dataset(): A = every class but sandal (5) and shirt (6), 7/8/9 -> 5/6/7;
/// B = sandal or shirt, label 1 for shirt.
void split_task(const Dataset<float>& d, Dataset<float>& a, Dataset<float>& b) {
  a = graft::data::select_classes(d, {0, 1, 2, 3, 4, 7, 8, 9});
  graft::data::relabel(a, [](float c) { return c > 6 ? c - 2 : c; });
  b = graft::data::select_classes(d, {5, 6});
  graft::data::relabel(b, [](float c) { return c == 6 ? 1.0f : 0.0f; });
}

Splits load_data(const std::string& dir) {
  auto fm = example_data::load_fashion_mnist(dir);
  Dataset<float> full = std::move(fm.train);
  Dataset<float> tst = std::move(fm.test);
  if (full.size() <= 5000) throw graft::value_error("the training set needs more than 5000 images");

  auto [valid, rest] = graft::data::split_at(full, 5000);  // X_valid = X_train_full[:5000]
  Splits s;
  split_task(rest, s.train_a, s.train_b);
  split_task(valid, s.valid_a, s.valid_b);
  split_task(tst, s.test_a, s.test_b);
  s.train_b_available = s.train_b.size();
  s.train_b = graft::data::take(s.train_b, std::min<Index>(200, s.train_b.size()));  // X_train_B[:200]
  return s;
}

std::shared_ptr<graft::Sequential<float>> make_trunk(const std::string& name, Index outputs, const std::string& act) {
  auto m = std::make_shared<graft::Sequential<float>>(name);
  m->add<graft::InputLayer>(Shape{28, 28});
  m->add<graft::Flatten>();
  for (Index units : {300, 100, 50, 50, 50}) m->add<graft::Dense>(units, "selu");
  m->add<graft::Dense>(outputs, act);
  return m;
}

graft::FitOptions<float> fit_options(int epochs, const Dataset<float>& valid, bool verbose) {
  graft::FitOptions<float> o;
  o.epochs = epochs;
  o.batch_size = 32;
  o.validation_x = {valid.x};
  o.validation_y = {valid.y};
  o.verbose = verbose ? 1 : 0;
  return o;
}

double accuracy(graft::Model<float>& m, const Dataset<float>& d) { return m.evaluate(d.x, d.y).at("accuracy"); }

/// max |a - b| (infinity when the shapes differ).
double max_abs_diff(const Tensor<float>& a, const Tensor<float>& b) {
  if (a.shape() != b.shape()) return std::numeric_limits<double>::infinity();
  double m = 0;
  for (Index i = 0; i < a.size(); ++i) m = std::max(m, std::abs(static_cast<double>(a[i]) - b[i]));
  return m;
}

std::string summary_string(graft::Model<float>& m) {
  std::ostringstream os;
  m.summary(os);
  return os.str();
}

struct ParamCounts {
  long long trainable = 0, non_trainable = 0;
};
ParamCounts param_counts(graft::Model<float>& m) {
  ParamCounts c;
  long long total = 0;
  for (auto* p : m.weights()) total += p->value.size();
  for (auto* p : m.trainable_weights()) c.trainable += p->value.size();
  c.non_trainable = total - c.trainable;
  return c;
}

struct SeedResult {
  std::uint64_t seed = 0;
  double acc_b = 0, acc_ba = 0, acc_ba_frozen = 0;
  double loss_b = 0, loss_ba = 0;
  double time_b = 0, time_ba = 0;
};

double error_ratio(double acc_b, double acc_ba) {
  double eb = 1 - acc_b, eba = 1 - acc_ba;
  if (eba <= 0) return eb <= 0 ? 1.0 : std::numeric_limits<double>::infinity();
  return eb / eba;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}
/// Sample standard deviation (n - 1); 0 for a single value.
double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  double m = mean(v), s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

std::string unique_layer_name(const graft::Model<float>& m, const std::string& base) {
  auto taken = [&](const std::string& n) {
    for (auto& l : m.layers())
      if (l->name() == n) return true;
    return false;
  };
  std::string n = base;
  for (int k = 1; taken(n); ++k) n = base + "_" + std::to_string(k);
  return n;
}

int run(const Args& args) {
  const auto t_start = Clock::now();
  const bool verbose = !args.quiet;
  fs::create_directories(args.out_dir);
  const std::string path_a = (fs::path(args.out_dir) / "my_model_A.h5").string();
  const std::string path_ba = (fs::path(args.out_dir) / "my_model_B_on_A.h5").string();
  const std::string path_json = (fs::path(args.out_dir) / "results.json").string();
  std::vector<std::string> failures;
  nlohmann::json report;
  std::ostringstream summaries;

  // ---- data ------------------------------------------------------------------------------------
  auto t0 = Clock::now();
  Splits d = load_data(args.data_dir);
  const double time_data = seconds_since(t0);
  std::cout << "Fashion-MNIST from " << args.data_dir << " (" << secs(time_data) << ")\n"
            << "  task A (8 classes):      train " << d.train_a.size() << ", valid " << d.valid_a.size() << ", test "
            << d.test_a.size() << "\n"
            << "  task B (sandal/shirt):   train " << d.train_b.size() << " (the first " << d.train_b.size() << " of "
            << d.train_b_available << "), valid " << d.valid_b.size() << ", test " << d.test_b.size() << "\n"
            << "  validation = the first 5000 training images, as in the book\n\n";
  report["data"] = {{"dir", args.data_dir},
                    {"train_a", d.train_a.size()}, {"valid_a", d.valid_a.size()}, {"test_a", d.test_a.size()},
                    {"train_b", d.train_b.size()}, {"valid_b", d.valid_b.size()}, {"test_b", d.test_b.size()}};

  // ---- task A ----------------------------------------------------------------------------------
  double time_a = 0, time_save_a = 0, acc_a = std::numeric_limits<double>::quiet_NaN();
  std::shared_ptr<graft::Model<float>> model_a;
  std::string source_a;
  if (args.model_a.empty()) {
    std::cout << "== Task A: model A, 8 classes, " << args.epochs_a << " epochs, SGD(learning_rate=1e-3)\n";
    graft::set_random_seed(args.seed);
    auto a = make_trunk("model_A", 8, "softmax");
    a->compile(std::make_shared<graft::SGD<float>>(1e-3), "sparse_categorical_crossentropy", {"accuracy"});
    t0 = Clock::now();
    a->fit(d.train_a.x, d.train_a.y, fit_options(args.epochs_a, d.valid_a, verbose));
    time_a = seconds_since(t0);
    acc_a = accuracy(*a, d.test_a);
    std::cout << "model A: test accuracy " << pct(acc_a) << " on task A (" << secs(time_a) << " of training)\n";
    t0 = Clock::now();
    graft::save_model(*a, path_a);
    time_save_a = seconds_since(t0);
    std::cout << "saved " << path_a << "\n";

    // Reload it: the rest works from the file, as the book does, and the file must give the
    // same predictions as the model that wrote it.
    model_a = graft::load_model<float>(path_a);
    Tensor<float> p0 = a->predict(d.test_a.x), p1 = model_a->predict(d.test_a.x);
    double diff = max_abs_diff(p0, p1);
    std::cout << "reloaded " << path_a << ": max |prediction difference| on the " << d.test_a.size()
              << " task-A test images = " << diff << (diff == 0 ? " (identical)" : "") << "\n\n";
    if (diff != 0) failures.push_back("my_model_A.h5 reloads with different predictions (max diff " + std::to_string(diff) + ")");
    report["model_a"] = {{"source", "trained"}, {"epochs", args.epochs_a}, {"test_accuracy", acc_a},
                         {"train_seconds", time_a}, {"file", path_a}, {"reload_max_abs_diff", diff}};
    source_a = path_a;
  } else {
    std::cout << "== Task A: skipped, model A from " << args.model_a << "\n";
    model_a = graft::load_model<float>(args.model_a);
    source_a = args.model_a;
    auto outs = model_a->output_shapes();
    if (outs.size() == 1 && outs[0].size() == 2 && outs[0][1] == 8) {
      model_a->compile(std::make_shared<graft::SGD<float>>(1e-3), "sparse_categorical_crossentropy", {"accuracy"});
      acc_a = accuracy(*model_a, d.test_a);
      std::cout << "model A: test accuracy " << pct(acc_a) << " on task A (assuming the book's label order)\n\n";
    } else {
      std::cout << "model A does not have 8 outputs; not evaluated on task A\n\n";
    }
    report["model_a"] = {{"source", args.model_a}, {"test_accuracy", std::isnan(acc_a) ? nlohmann::json(nullptr) : nlohmann::json(acc_a)}};
  }
  if (verbose) summaries << summary_string(*model_a);
  const std::vector<Tensor<float>> weights_a_before = model_a->get_weights();

  // ---- task B, for several seeds -----------------------------------------------------------------
  std::vector<SeedResult> results;
  ParamCounts frozen_counts, unfrozen_counts;
  for (int k = 0; k < args.seeds; ++k) {
    SeedResult r;
    r.seed = args.seed + static_cast<std::uint64_t>(k);
    const bool show = verbose && k == 0;  // progress lines for the first seed only
    if (show) std::cout << "== Task B, seed " << r.seed << ": model B from scratch, 200 images, 20 epochs, SGD(1e-3)\n";

    graft::set_random_seed(r.seed);
    auto b = make_trunk("model_B", 1, "sigmoid");
    b->compile(std::make_shared<graft::SGD<float>>(1e-3), "binary_crossentropy", {"accuracy"});
    t0 = Clock::now();
    b->fit(d.train_b.x, d.train_b.y, fit_options(20, d.valid_b, show));
    r.time_b = seconds_since(t0);
    auto eb = b->evaluate(d.test_b.x, d.test_b.y);
    r.acc_b = eb.at("accuracy");
    r.loss_b = eb.at("loss");

    if (show)
      std::cout << "== Task B, seed " << r.seed << ": model B on A (frozen 4 epochs at SGD(" << args.lr_frozen
                << "), then unfrozen 16 at SGD(" << args.lr_unfrozen << "))\n";
    // Its own stream (not what model B left over), so B on A does not depend on how B was built:
    // the new head's weights and the shuffling.
    graft::set_random_seed(r.seed + 1000003);
    t0 = Clock::now();
    // model_A_clone = clone_model(model_A); model_A_clone.set_weights(model_A.get_weights())
    auto clone = graft::clone_model(model_a);
    clone->set_weights(model_a->get_weights());
    // model_B_on_A = Sequential(model_A_clone.layers[:-1]); add(Dense(1, activation="sigmoid"))
    std::vector<std::shared_ptr<graft::Layer<float>>> reused = clone->layers();
    if (!reused.empty() && std::dynamic_pointer_cast<graft::InputLayer<float>>(reused.front())) reused.erase(reused.begin());
    if (reused.size() < 2) throw graft::value_error(source_a + ": model A needs at least two layers to reuse all but the last");
    reused.pop_back();
    auto ba = std::make_shared<graft::Sequential<float>>(reused, "model_B_on_A");
    Shape in = clone->input_shapes().at(0);
    ba->build_input(Shape(in.begin() + 1, in.end()));
    ba->add(std::make_shared<graft::Dense<float>>(1, "sigmoid", true, unique_layer_name(*ba, "dense_b_output")));

    // for layer in model_B_on_A.layers[:-1]: layer.trainable = False
    for (size_t i = 0; i + 1 < ba->layers().size(); ++i) ba->layers()[i]->set_trainable(false);
    ba->compile(std::make_shared<graft::SGD<float>>(args.lr_frozen), "binary_crossentropy", {"accuracy"});
    if (k == 0) {
      frozen_counts = param_counts(*ba);
      if (verbose) summaries << "\nmodel B on A, reused layers frozen (first 4 epochs):\n" << summary_string(*ba);
    }
    ba->fit(d.train_b.x, d.train_b.y, fit_options(4, d.valid_b, show));
    r.acc_ba_frozen = accuracy(*ba, d.test_b);

    for (size_t i = 0; i + 1 < ba->layers().size(); ++i) ba->layers()[i]->set_trainable(true);
    ba->compile(std::make_shared<graft::SGD<float>>(args.lr_unfrozen), "binary_crossentropy", {"accuracy"});
    if (k == 0) {
      unfrozen_counts = param_counts(*ba);
      if (verbose) summaries << "\nmodel B on A, unfrozen (16 more epochs):\n" << summary_string(*ba);
    }
    ba->fit(d.train_b.x, d.train_b.y, fit_options(16, d.valid_b, show));
    r.time_ba = seconds_since(t0);
    auto eba = ba->evaluate(d.test_b.x, d.test_b.y);
    r.acc_ba = eba.at("accuracy");
    r.loss_ba = eba.at("loss");

    if (k == 0) {
      graft::save_model(*ba, path_ba);
      auto back = graft::load_model<float>(path_ba);
      double diff = max_abs_diff(ba->predict(d.test_b.x), back->predict(d.test_b.x));
      if (verbose)
        std::cout << "saved " << path_ba << " (seed " << r.seed << "); reloaded: max |prediction difference| = " << diff
                  << "\n";
      if (diff != 0) failures.push_back("my_model_B_on_A.h5 reloads with different predictions");
      report["model_b_on_a_file"] = {{"file", path_ba}, {"seed", r.seed}, {"reload_max_abs_diff", diff}};
    }
    std::cout << "seed " << r.seed << ": B " << pct(r.acc_b) << " (" << secs(r.time_b) << "), B on A " << pct(r.acc_ba)
              << " (" << pct(r.acc_ba_frozen) << " after the frozen phase; " << secs(r.time_ba) << ")\n";
    if (show) std::cout << "\n";
    results.push_back(r);
  }

  // Model A must be untouched: B-on-A trained a clone's layers.
  {
    auto now = model_a->get_weights();
    bool same = now.size() == weights_a_before.size();
    for (size_t i = 0; same && i < now.size(); ++i) same = now[i] == weights_a_before[i];
    if (!same) failures.push_back("model A's weights changed while training B on A (the clone did not isolate it)");
    report["model_a_untouched"] = same;
  }

  // ---- results -------------------------------------------------------------------------------------
  const double time_total = seconds_since(t_start);
  if (verbose) {
    std::cout << "== Models\n" << summaries.str();
    std::cout << "B on A parameters: frozen: trainable " << graft::detail::thousands(frozen_counts.trainable)
              << ", non-trainable " << graft::detail::thousands(frozen_counts.non_trainable)
              << "; unfrozen: trainable " << graft::detail::thousands(unfrozen_counts.trainable) << ", non-trainable "
              << graft::detail::thousands(unfrozen_counts.non_trainable) << "\n\n";
  }
  std::vector<double> accs_b, accs_ba, ratios;
  std::cout << "== Sandal vs shirt, test accuracy (" << d.test_b.size() << " test images; B trained on "
            << d.train_b.size() << " images)\n";
  std::cout << "  seed      model B   B on A   error-rate ratio (1-accB)/(1-accBA)\n";
  nlohmann::json per_seed = nlohmann::json::array();
  for (auto& r : results) {
    double q = error_ratio(r.acc_b, r.acc_ba);
    accs_b.push_back(r.acc_b);
    accs_ba.push_back(r.acc_ba);
    ratios.push_back(q);
    std::printf("  %-8llu  %7s  %7s   %s\n", static_cast<unsigned long long>(r.seed), pct(r.acc_b).c_str(),
                pct(r.acc_ba).c_str(), std::isinf(q) ? "inf" : fmt(q, 2).c_str());
    per_seed.push_back({{"seed", r.seed}, {"accuracy_b", r.acc_b}, {"accuracy_b_on_a", r.acc_ba},
                        {"accuracy_b_on_a_after_frozen_phase", r.acc_ba_frozen}, {"loss_b", r.loss_b},
                        {"loss_b_on_a", r.loss_ba}, {"error_rate_ratio", std::isinf(q) ? nlohmann::json(nullptr) : nlohmann::json(q)},
                        {"seconds_b", r.time_b}, {"seconds_b_on_a", r.time_ba}});
  }
  const double mb = mean(accs_b), sb = stddev(accs_b), mba = mean(accs_ba), sba = stddev(accs_ba);
  const double ratio_of_means = error_ratio(mb, mba);
  std::printf("  %-8s  %7s  %7s   %s (ratio of the mean error rates)\n", "mean", pct(mb).c_str(), pct(mba).c_str(),
              std::isinf(ratio_of_means) ? "inf" : fmt(ratio_of_means, 2).c_str());
  std::printf("  %-8s  %7s  %7s   (sample standard deviation over %zu seed%s)\n", "std", pct(sb).c_str(), pct(sba).c_str(),
              results.size(), results.size() == 1 ? "" : "s");
  int better = 0;
  for (auto& r : results) better += r.acc_ba > r.acc_b;
  std::cout << "  B on A beat B for " << better << " of " << results.size() << " seeds; model B: " << pct(mb) << " ± "
            << pct(sb) << ", B on A: " << pct(mba) << " ± " << pct(sba) << "\n\n";
  std::cout << "Note: the book's figures are a single run (model B 97.05%, B on A 99.25%: \"the error rate dropped\n"
               "by a factor of almost 4\"), kept after trying many configurations; the author says so himself\n"
               "(\"I cheated\") and warns that with other classes or seeds the gain usually shrinks, vanishes or\n"
               "reverses. The table above is every seed that was run, none left out. Model A was trained once"
            << (args.model_a.empty() ? " (seed " + std::to_string(args.seed) + ")" : std::string(" (") + source_a + ")")
            << ";\nB and B on A are re-initialised for each seed. B on A learning rates: " << args.lr_frozen
            << " frozen, " << args.lr_unfrozen << " unfrozen" << (args.lr_frozen == 0.01 && args.lr_unfrozen == 1e-4 ? " (the seed notes' and the printed book's recipe; the book's notebook uses 1e-3 in both phases)" : "")
            << ".\n\n";

  std::cout << "== Wall time (" << args.threads << " thread" << (args.threads == 1 ? "" : "s") << ")\n"
            << "  load data            " << secs(time_data) << "\n";
  if (args.model_a.empty())
    std::cout << "  train model A        " << secs(time_a) << " (" << args.epochs_a << " epochs)\n"
              << "  save model A         " << secs(time_save_a) << "\n";
  double tb = 0, tba = 0;
  for (auto& r : results) {
    tb += r.time_b;
    tba += r.time_ba;
  }
  std::cout << "  train model B        " << secs(tb) << " (" << results.size() << " x 20 epochs)\n"
            << "  train B on A         " << secs(tba) << " (" << results.size() << " x (4 + 16) epochs)\n"
            << "  total                " << secs(time_total) << "\n";

  report["seeds"] = per_seed;
  report["summary"] = {{"mean_accuracy_b", mb}, {"std_accuracy_b", sb}, {"mean_accuracy_b_on_a", mba},
                       {"std_accuracy_b_on_a", sba},
                       {"error_rate_ratio_of_means", std::isinf(ratio_of_means) ? nlohmann::json(nullptr) : nlohmann::json(ratio_of_means)},
                       {"mean_of_error_rate_ratios", mean(ratios)}, {"seeds_where_b_on_a_beats_b", better}};
  report["params_b_on_a"] = {{"frozen", {{"trainable", frozen_counts.trainable}, {"non_trainable", frozen_counts.non_trainable}}},
                             {"unfrozen", {{"trainable", unfrozen_counts.trainable}, {"non_trainable", unfrozen_counts.non_trainable}}}};
  report["seconds"] = {{"data", time_data}, {"model_a", time_a}, {"model_b", tb}, {"b_on_a", tba}, {"total", time_total}};
  report["note"] = "The book's figures (B 97.05%, B on A 99.25%) are one run kept after trying many configurations "
                   "(the author says he cheated); these are all the seeds that were run.";
  report["recipe"] = {{"validation", "first 5000 training images"}, {"train_b", "first 200 sandal/shirt images of the rest"},
                      {"model_a", "Flatten, Dense 300-100-50-50-50 selu, Dense 8 softmax, SGD 1e-3, epochs_a"},
                      {"model_b", "same trunk, Dense 1 sigmoid, SGD 1e-3, 20 epochs"},
                      {"b_on_a", "clone of A minus its last layer + Dense 1 sigmoid; frozen 4 epochs, then unfrozen 16 epochs"},
                      {"b_on_a_lr_frozen", args.lr_frozen}, {"b_on_a_lr_unfrozen", args.lr_unfrozen}, {"threads", args.threads}};

  if (args.check) {
    for (auto& r : results)
      if (!(r.acc_ba > 0.85))
        failures.push_back("seed " + std::to_string(r.seed) + ": B on A test accuracy " + pct(r.acc_ba) + " is not above 85%");
  }
  report["check"] = {{"requested", args.check}, {"failures", failures}};
  {
    std::ofstream o(path_json);
    o << report.dump(2) << "\n";
    if (!o) throw graft::io_error(path_json + ": cannot write");
  }
  std::cout << "wrote " << path_json << "\n";
  if (!failures.empty()) {
    for (auto& f : failures) std::cerr << (args.check ? "CHECK FAILED: " : "warning: ") << f << "\n";
    if (args.check) return 1;
  } else if (args.check) {
    std::cout << "CHECK passed: every B on A above 85%, saved models reload with identical predictions, model A untouched\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  example_args::program_name() = "fashion_mnist_transfer";
  Args args = parse_args(argc, argv);
  // Both knobs: Eigen's own products and graft's OpenMP-split GEMM.
  Eigen::setNbThreads(args.threads);
#ifdef _OPENMP
  omp_set_num_threads(args.threads);
#endif
  try {
    return run(args);
  } catch (const graft::error& e) {
    std::cerr << "fashion_mnist_transfer: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "fashion_mnist_transfer: " << e.what() << "\n";
    return 1;
  }
}
