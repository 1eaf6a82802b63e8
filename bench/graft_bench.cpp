// graft_bench — the C++ side of graft's benchmark against PyTorch (bench/torch_bench.py is the twin;
// bench/run drives both). One workload per process, so that each run's peak RSS is its own.
//
//   graft_bench prepare --out DIR [--seed S]
//       writes DIR/my_model_A.h5 (model A), DIR/my_model_B_on_A.h5 (the B-on-A recipe: model A's
//       trunk + a new Dense(1, sigmoid) head) and DIR/cnn.h5 (the small CNN), seeded: the
//       initial weights both frameworks start from.
//   graft_bench run WORKLOAD --weights DIR [--data DIR] [--threads N] [--samples N] [--epochs N]
//                   [--no-shuffle] [--dump FILE] [--min-time S]
//       WORKLOAD: mlp_train | mlp_predict256 | mlp_predict1 | finetune_frozen | cnn_train |
//                 cnn_predict | load. Prints one line "RESULT {json}" (samples/s, seconds, loss,
//                 peak RSS in kB).
//
// Data: real Fashion-MNIST (/usr/share/datasets/fashion-mnist). Task A: the 8 classes other than
// sandal (5) and shirt (6), labels 7/8/9 -> 5/6/7; task B: sandal vs shirt (shirt = 1).
#include <graft/graft.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

using graft::Index;
using graft::Shape;
using graft::Tensor;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string cmd, workload;
  std::string weights = ".", data = "/usr/share/datasets/fashion-mnist", out = ".", dump;
  int threads = 1;
  Index samples = 0;  // 0: the workload's default
  int epochs = 0;     // 0: the workload's default
  bool shuffle = true;
  std::uint64_t seed = 1234;
  double min_time = 0;  // repeat whole epochs / predict passes until this many seconds have passed
};

[[noreturn]] void die(const std::string& m) {
  std::cerr << "graft_bench: " << m << "\n";
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  if (argc < 2) die("usage: graft_bench prepare --out DIR | graft_bench run WORKLOAD --weights DIR [options]");
  a.cmd = argv[1];
  int i = 2;
  if (a.cmd == "run") {
    if (argc < 3) die("run needs a workload");
    a.workload = argv[2];
    i = 3;
  }
  for (; i < argc; ++i) {
    std::string f = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) die(f + " needs a value");
      return argv[++i];
    };
    if (f == "--weights") a.weights = val();
    else if (f == "--data") a.data = val();
    else if (f == "--out") a.out = val();
    else if (f == "--dump") a.dump = val();
    else if (f == "--threads") a.threads = std::stoi(val());
    else if (f == "--samples") a.samples = std::stol(val());
    else if (f == "--epochs") a.epochs = std::stoi(val());
    else if (f == "--seed") a.seed = std::stoull(val());
    else if (f == "--no-shuffle") a.shuffle = false;
    else if (f == "--min-time") a.min_time = std::stod(val());
    else die("unknown option " + f);
  }
  return a;
}

double seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// Peak resident set size of this process so far (kB), from /proc/self/status.
long peak_rss_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

void set_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  Eigen::setNbThreads(n);
}

// ---- models ------------------------------------------------------------------------------------

std::shared_ptr<graft::Sequential<float>> model_a() {
  auto m = std::make_shared<graft::Sequential<float>>("model_A");
  m->add<graft::InputLayer>(Shape{28, 28});
  m->add<graft::Flatten>();
  for (Index units : {300, 100, 50, 50, 50}) m->add<graft::Dense>(units, "selu");
  m->add<graft::Dense>(8, "softmax");
  m->compile(std::make_shared<graft::SGD<float>>(1e-3), "sparse_categorical_crossentropy");
  return m;
}

std::shared_ptr<graft::Sequential<float>> model_cnn() {
  auto m = std::make_shared<graft::Sequential<float>>("cnn");
  m->add<graft::InputLayer>(Shape{28, 28, 1});
  m->add<graft::Conv2D>(32, 3, 1, "same", "relu");
  m->add<graft::MaxPooling2D>(2);
  m->add<graft::Conv2D>(64, 3, 1, "same", "relu");
  m->add<graft::MaxPooling2D>(2);
  m->add<graft::Flatten>();
  m->add<graft::Dense>(128, "relu");
  m->add<graft::Dense>(10, "softmax");
  m->compile(std::make_shared<graft::SGD<float>>(1e-2), "sparse_categorical_crossentropy");
  return m;
}

/// The Hands-On ML recipe: clone model A, reuse every layer but the head, add Dense(1, sigmoid),
/// freeze the reused layers.
std::shared_ptr<graft::Sequential<float>> b_on_a(graft::Model<float>& a) {
  auto clone = graft::clone_model(a);
  clone->set_weights(a.get_weights());
  auto reused = clone->layers();
  reused.pop_back();
  auto b = std::make_shared<graft::Sequential<float>>(reused, "model_B_on_A");
  b->build_input({28, 28});  // model A's input shape (otherwise built by the first batch)
  b->add<graft::Dense>(1, "sigmoid", true, "head");
  for (auto& l : reused) l->set_trainable(false);
  b->compile(std::make_shared<graft::SGD<float>>(1e-3), "binary_crossentropy");
  return b;
}

// ---- data --------------------------------------------------------------------------------------

graft::data::Dataset<float> read_split(const std::string& dir, bool train) {
  const std::string p = dir + (train ? "/train-" : "/t10k-");
  if (!std::ifstream(p + "images-idx3-ubyte.gz")) {
    std::cerr << "graft_bench: Fashion-MNIST not found in " << dir << " (apt-get install dataset-fashion-mnist)\n";
    std::exit(3);
  }
  auto d = graft::data::read_idx_pair<float>(p + "images-idx3-ubyte.gz", p + "labels-idx1-ubyte.gz");
  return {std::move(d.images), std::move(d.labels)};
}

graft::data::Dataset<float> task_a(const graft::data::Dataset<float>& d) {
  auto a = graft::data::select_classes(d, {0, 1, 2, 3, 4, 7, 8, 9});
  graft::data::relabel(a, [](float c) { return c > 6 ? c - 2 : c; });
  return a;
}
graft::data::Dataset<float> task_b(const graft::data::Dataset<float>& d) {
  auto b = graft::data::select_classes(d, {5, 6});
  graft::data::relabel(b, [](float c) { return c == 6 ? 1.0f : 0.0f; });
  b.y.reshape({b.y.dim(0), 1});
  return b;
}
void take_first(graft::data::Dataset<float>& d, Index n) {
  if (n > 0 && n < d.size()) d = graft::data::take(d, n);
}
void add_channel_axis(Tensor<float>& x) { x.reshape({x.dim(0), x.dim(1), x.dim(2), 1}); }

void dump(const std::string& path, const Tensor<float>& t) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(t.data()), static_cast<std::streamsize>(t.size() * sizeof(float)));
}

// ---- workloads ---------------------------------------------------------------------------------

struct Result {
  Index samples = 0;
  double secs = 0;
  double loss = -1;
  double extra = -1;  // load: the first load's time
};

/// Three warm-up steps on the first batch (both twins do the same), then `epochs` of fit, then
/// more single epochs until `min_time` seconds have passed (both twins do the same).
Result train(graft::Model<float>& m, const graft::data::Dataset<float>& d, int epochs, bool shuffle, std::uint64_t seed,
             double min_time) {
  const Index w = std::min<Index>(32, d.size());
  std::vector<Tensor<float>> wx{d.x.slice_rows(0, w)}, wy{d.y.slice_rows(0, w)};
  for (int i = 0; i < 3; ++i) m.train_on_batch(wx, wy);
  graft::FitOptions<float> o;
  o.epochs = epochs;
  o.batch_size = 32;
  o.verbose = 0;
  o.shuffle = shuffle;
  o.seed = seed;
  auto t0 = Clock::now();
  graft::History h = m.fit(d.x, d.y, o);
  int done = epochs;
  for (o.epochs = 1; seconds(t0) < min_time; ++done) {
    o.seed = seed + static_cast<std::uint64_t>(done);
    h = m.fit(d.x, d.y, o);
  }
  Result r;
  r.secs = seconds(t0);
  r.samples = d.size() * done;
  r.loss = h["loss"].back();
  return r;
}

/// Warm-up (20 batches, as the twin), then whole predict passes over x until `min_time` seconds
/// have passed (at least one).
Result predict(graft::Model<float>& m, const Tensor<float>& x, Index batch, const std::string& dump_path,
               double min_time) {
  m.predict(x.slice_rows(0, std::min<Index>(x.dim(0), 20 * batch)), batch);
  auto t0 = Clock::now();
  Tensor<float> y;
  Index passes = 0;
  for (; passes == 0 || seconds(t0) < min_time; ++passes) y = m.predict(x, batch);
  Result r;
  r.secs = seconds(t0);
  r.samples = x.dim(0) * passes;
  if (!dump_path.empty()) dump(dump_path, y);
  return r;
}

Result run(const Args& a) {
  const std::string w = a.weights + "/";
  const std::string& wl = a.workload;
  if (wl == "load") {
    Result r;
    const int reps = 20;
    std::vector<double> t;
    for (int i = 0; i < reps; ++i) {
      auto t0 = Clock::now();
      auto m = graft::load_model<float>(w + "my_model_A.h5");
      t.push_back(seconds(t0));
    }
    r.extra = t[0];
    std::sort(t.begin() + 1, t.end());
    r.secs = t[static_cast<size_t>(reps / 2)];
    r.samples = 1;
    return r;
  }
  if (wl == "mlp_train") {
    auto d = task_a(read_split(a.data, true));
    take_first(d, a.samples);
    auto m = graft::load_model<float>(w + "my_model_A.h5");
    m->compile(std::make_shared<graft::SGD<float>>(1e-3), "sparse_categorical_crossentropy");
    return train(*m, d, a.epochs > 0 ? a.epochs : 1, a.shuffle, a.seed, a.min_time);
  }
  if (wl == "finetune_frozen") {
    auto d = task_b(read_split(a.data, true));
    take_first(d, a.samples);
    auto ma = graft::load_model<float>(w + "my_model_A.h5");
    auto b = b_on_a(*ma);
    graft::load_weights(*b, w + "my_model_B_on_A.h5");  // the head's initial weights
    return train(*b, d, a.epochs > 0 ? a.epochs : 4, a.shuffle, a.seed, a.min_time);
  }
  if (wl == "cnn_train") {
    auto d = read_split(a.data, true);
    take_first(d, a.samples > 0 ? a.samples : 6400);
    add_channel_axis(d.x);
    auto m = graft::load_model<float>(w + "cnn.h5");
    m->compile(std::make_shared<graft::SGD<float>>(1e-2), "sparse_categorical_crossentropy");
    return train(*m, d, a.epochs > 0 ? a.epochs : 1, a.shuffle, a.seed, a.min_time);
  }
  if (wl == "mlp_predict256" || wl == "mlp_predict1") {
    const bool one = wl == "mlp_predict1";
    auto d = read_split(a.data, false);
    take_first(d, a.samples > 0 ? a.samples : (one ? 4000 : 10000));
    auto m = graft::load_model<float>(w + "my_model_A.h5");
    return predict(*m, d.x, one ? 1 : 256, a.dump, a.min_time);
  }
  if (wl == "cnn_predict") {
    auto d = read_split(a.data, false);
    take_first(d, a.samples > 0 ? a.samples : 5120);
    add_channel_axis(d.x);
    auto m = graft::load_model<float>(w + "cnn.h5");
    return predict(*m, d.x, 256, a.dump, a.min_time);
  }
  die("unknown workload '" + wl + "'");
}

void prepare(const Args& a) {
  graft::set_random_seed(a.seed);
  auto ma = model_a();
  graft::save_model(*ma, a.out + "/my_model_A.h5");
  auto b = b_on_a(*ma);
  graft::save_model(*b, a.out + "/my_model_B_on_A.h5");
  auto c = model_cnn();
  graft::save_model(*c, a.out + "/cnn.h5");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args a = parse(argc, argv);
    set_threads(a.threads);
    if (a.cmd == "prepare") {
      prepare(a);
      return 0;
    }
    if (a.cmd != "run") die("unknown command '" + a.cmd + "'");
    Result r = run(a);
    std::printf("RESULT {\"framework\": \"graft\", \"workload\": \"%s\", \"threads\": %d, \"samples\": %ld, "
                "\"seconds\": %.6f, \"samples_per_s\": %.3f, \"loss\": %.6f, \"first\": %.6f, \"peak_rss_kb\": %ld}\n",
                a.workload.c_str(), a.threads, static_cast<long>(r.samples), r.secs,
                r.secs > 0 ? static_cast<double>(r.samples) / r.secs : 0.0, r.loss, r.extra, peak_rss_kb());
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "graft_bench: " << e.what() << "\n";
    return 1;
  }
}
