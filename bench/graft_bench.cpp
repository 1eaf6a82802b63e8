// graft_bench — the C++ side of graft's benchmark against PyTorch (bench/torch_bench.py is the twin;
// bench/run drives both). One workload per process, so that each run's peak RSS is its own.
//
//   graft_bench prepare --out DIR [--seed S] [--tm-model FILE]
//       writes DIR/my_model_A.h5 (model A), DIR/my_model_B_on_A.h5 (the B-on-A recipe: model A's
//       trunk + a new Dense(1, sigmoid) head) and DIR/cnn.h5 (the small CNN), seeded: the
//       initial weights both frameworks start from. With --tm-model (the Teachable Machine
//       MobileNetV2 of the shared Keras corpus): DIR/mobilenet_frozen.h5 (its trunk, Rescaling
//       to [-1, 1] in front, a new Dense(5, softmax) head) and DIR/mobilenet_images/, 1000
//       Fashion-MNIST images in 5 class folders, 256x256, half RGB JPEG, half gray PNG, and
//       DIR/mobilenet_x.f32 + DIR/mobilenet_y.f32: the first 128 of them decoded at 224x224x3
//       (0..255) with their labels, the in-memory data of mobilenet_predict / mobilenet_train.
//   graft_bench layers --weights DIR [--threads N]
//       the FMA peak of one core (independent fused multiply-add chains, AVX2 and AVX-512 where
//       the processor has it) and the forward throughput of each kind of convolution in the
//       MobileNetV2 of mobilenet_frozen.h5 (1x1 Conv2D, 3x3 DepthwiseConv2D, the 3x3 stem) at
//       batch 32 on their real shapes, as GFLOP/s and as a fraction of that peak (bench/README.md).
//   graft_bench run WORKLOAD --weights DIR [--data DIR] [--threads N] [--samples N] [--epochs N]
//                   [--no-shuffle] [--dump FILE] [--min-time S]
//       WORKLOAD: mlp_train | mlp_predict256 | mlp_predict1 | finetune_frozen | cnn_train |
//                 cnn_predict | load | mobilenet_finetune_frozen | image_pipeline |
//                 mobilenet_predict | mobilenet_train. Prints one
//                 line "RESULT {json}" (samples/s, seconds, loss, peak RSS in kB).
//
// Data: real Fashion-MNIST (/usr/share/datasets/fashion-mnist). Task A: the 8 classes other than
// sandal (5) and shirt (6), labels 7/8/9 -> 5/6/7; task B: sandal vs shirt (shirt = 1).
// mobilenet_finetune_frozen: the MobileNetV2 with its trunk frozen and the new head trained,
// Adam 1e-3, batch 32, 5 epochs over the image folder read by image_dataset_from_directory at
// 224x224 (fit's automatic feature cache runs the trunk in the first epoch only).
// mobilenet_predict: the same model predicting 128 images (batch 32) held in memory.
// mobilenet_train: the same model with every layer trainable (BatchNormalization in training
// mode), Adam 1e-4, batch 32, epochs over 96 images held in memory.
// image_pipeline: what feeds training from that folder — decode + resize to 224x224 + the
// augmentation layers RandomFlip, RandomRotation(0.1), RandomZoom(0.1) in training mode — on
// --threads threads, each loading whole batches of 32 (graft's own parallelism off).
#include <graft/graft.hpp>
#include <graft/images.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <functional>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#include <immintrin.h>

using graft::Index;
using graft::Shape;
using graft::Tensor;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string cmd, workload;
  std::string weights = ".", data = "/usr/share/datasets/fashion-mnist", out = ".", dump, tm_model;
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
    else if (f == "--tm-model") a.tm_model = val();
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
  double extra = -1;  // load: the first load's time; mobilenet: the first epoch's
  std::string note;   // mobilenet: fit's feature cache; image_pipeline: the time split
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

// ---- the MobileNetV2 workloads ----------------------------------------------------------------------

const char* const kTmPool = "global_average_pooling2d_GlobalAveragePooling2D1";  // the TM model's last pooling
const int kMnClasses[5] = {5, 6, 7, 8, 9};
const char* const kMnFolders[5] = {"sandal", "shirt", "sneaker", "bag", "ankle_boot"};
constexpr int kMnPerClass = 200, kMnFileSize = 256;
constexpr Index kMnTensorImages = 128;

void prepare_mobilenet(const Args& a) {
  auto tm = graft::load_model<float>(a.tm_model);
  auto trunk = graft::cut_after(*tm, kTmPool);
  trunk->set_name("mobilenet_trunk");
  auto in = graft::Input<float>({224, 224, 3}, "image");
  auto x = (*std::make_shared<graft::Rescaling<float>>(1.0 / 127.5, -1.0, "rescaling"))(in);  // preprocess_input
  x = (*trunk)(x);
  auto out = (*std::make_shared<graft::Dense<float>>(5, "softmax", true, "head"))(x);
  graft::Model<float> m(in, out, "mobilenet_frozen");
  trunk->set_trainable(false);
  graft::save_model(m, a.out + "/mobilenet_frozen.h5");

  namespace fs = std::filesystem;
  const fs::path root = fs::path(a.out) / "mobilenet_images";
  fs::remove_all(root);
  auto d = read_split(a.data, true);
  graft::data::ResizeOptions up;
  up.height = up.width = kMnFileSize;
  for (int k = 0; k < 5; ++k) {
    fs::create_directories(root / kMnFolders[k]);
    int n = 0;
    for (Index i = 0; i < d.size() && n < kMnPerClass; ++i) {
      if (static_cast<int>(d.y[i]) != kMnClasses[k]) continue;
      graft::data::Image small;
      small.height = small.width = 28;
      small.channels = 1;
      small.pixels.resize(28 * 28);
      for (size_t p = 0; p < small.pixels.size(); ++p)
        small.pixels[p] = static_cast<std::uint8_t>(std::lround(d.x[i * 784 + static_cast<Index>(p)] * 255.0f));
      const std::vector<float> big = graft::data::resize_image(small, up);  // photo-sized: 256 x 256
      graft::data::Image img;
      img.height = img.width = kMnFileSize;
      img.channels = 1;
      img.pixels.resize(big.size());
      for (size_t p = 0; p < big.size(); ++p) img.pixels[p] = static_cast<std::uint8_t>(std::lround(std::min(255.f, std::max(0.f, big[p]))));
      char name[32];
      std::snprintf(name, sizeof name, "%05ld.%s", static_cast<long>(i), n % 2 ? "png" : "jpg");
      if (n % 2) {
        graft::data::write_png((root / kMnFolders[k] / name).string(), img);
      } else {
        graft::data::convert_color(img, graft::data::ColorMode::rgb);
        graft::data::write_jpeg((root / kMnFolders[k] / name).string(), img, 90);
      }
      ++n;
    }
  }
  // the first kMnTensorImages images of the folder (in its order) as one tensor, for both twins
  graft::data::ImageFolderOptions io;
  io.image_size = {224, 224};
  io.color_mode = "rgb";
  io.shuffle = false;
  io.verbose = false;
  auto folder = graft::data::image_dataset_from_directory<float>(root.string(), io);
  std::vector<Index> rows(kMnTensorImages);
  for (Index i = 0; i < kMnTensorImages; ++i) rows[static_cast<size_t>(i)] = i * (folder.size() / kMnTensorImages);
  std::vector<Tensor<float>> xs, ys;
  folder.load(rows.data(), kMnTensorImages, xs, ys);
  dump(a.out + "/mobilenet_x.f32", xs[0]);
  dump(a.out + "/mobilenet_y.f32", ys[0]);
}

/// mobilenet_x.f32 / mobilenet_y.f32 (prepare), the first `n` images.
graft::data::Dataset<float> mobilenet_tensor(const Args& a, Index n) {
  auto read = [&](const std::string& name, Shape shape) {
    Tensor<float> t(shape);
    std::ifstream f(a.weights + "/" + name, std::ios::binary);
    if (!f.read(reinterpret_cast<char*>(t.data()), static_cast<std::streamsize>(t.size() * sizeof(float))))
      die(a.weights + "/" + name + ": missing or short (graft_bench prepare --tm-model writes it)");
    return t;
  };
  n = std::min<Index>(n, kMnTensorImages);
  auto x = read("mobilenet_x.f32", {kMnTensorImages, 224, 224, 3});
  auto y = read("mobilenet_y.f32", {kMnTensorImages});
  return {x.slice_rows(0, n), y.slice_rows(0, n)};
}

/// The image folder at 224x224 (Keras' image_dataset_from_directory), its first `samples` rows.
std::shared_ptr<const graft::data::Source<float>> mobilenet_images(const Args& a, std::uint64_t seed) {
  graft::data::ImageFolderOptions io;
  io.image_size = {224, 224};
  io.color_mode = "rgb";
  io.seed = static_cast<std::int64_t>(seed % 4294967296ull);
  io.verbose = false;
  auto folder = std::make_shared<graft::data::ImageFolder<float>>(graft::data::image_dataset_from_directory<float>(a.weights + "/mobilenet_images", io));
  if (a.samples <= 0 || a.samples >= folder->size()) return folder;
  std::vector<Index> rows(static_cast<size_t>(a.samples));
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<Index>(i);
  return std::make_shared<graft::data::SubsetSource<float>>(folder, rows);
}

/// The head on the frozen trunk, 5 epochs over the image folder: decoding, the trunk (once, in
/// the first epoch: fit's feature cache) and the head's training all timed. One warm-up step on
/// the first batch before (as the twin).
Result mobilenet_finetune(const Args& a) {
  auto src = mobilenet_images(a, a.seed);
  auto m = graft::load_model<float>(a.weights + "/mobilenet_frozen.h5");
  if (!a.dump.empty()) {  // the twin check: the inputs of the first images and the predictions
    std::vector<Index> rows(static_cast<size_t>(std::min<Index>(16, src->size())));
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<Index>(i);
    std::vector<Tensor<float>> x, y;
    src->load(rows.data(), static_cast<Index>(rows.size()), x, y);
    const std::string xs = a.dump.size() > 4 ? a.dump.substr(0, a.dump.size() - 4) + ".x.f32" : a.dump + ".x";
    dump(xs, x[0]);
    dump(a.dump, m->predict(x[0]));
    Result r;
    r.samples = static_cast<Index>(rows.size());
    r.secs = 1;
    return r;
  }
  m->set_trainable(true);
  for (auto& l : m->layers())
    if (l->name() != "head") l->set_trainable(false);
  m->compile(std::make_shared<graft::Adam<float>>(1e-3), "sparse_categorical_crossentropy");
  {
    std::vector<Index> rows(static_cast<size_t>(std::min<Index>(32, src->size())));
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<Index>(i);
    std::vector<Tensor<float>> x, y;
    src->load(rows.data(), static_cast<Index>(rows.size()), x, y);
    m->train_on_batch(x, y);
  }
  graft::FitOptions<float> o;
  o.epochs = a.epochs > 0 ? a.epochs : 5;
  o.batch_size = 32;
  o.verbose = 0;
  o.shuffle = a.shuffle;
  o.seed = a.seed;
  auto timer = std::make_shared<graft::LambdaCallback<float>>();
  Clock::time_point t_epoch;
  double first = -1;
  timer->on_epoch_begin_fn = [&](int, const graft::Logs&) { t_epoch = Clock::now(); };
  timer->on_epoch_end_fn = [&](int e, graft::Logs&) {
    if (e == 0) first = seconds(t_epoch);
  };
  o.callbacks.push_back(timer);
  auto t0 = Clock::now();
  graft::History h = m->fit(*src, o);
  Result r;
  r.secs = seconds(t0);
  r.samples = src->size() * o.epochs;
  r.loss = h["loss"].back();
  r.extra = first;
  r.note = h.feature_cache;
  return r;
}

/// Images/s of the input pipeline: --threads threads, each loading whole batches of 32 from the
/// folder (decode + bilinear resize to 224x224) and passing them through its own augmentation
/// layers in training mode, over whole passes until --min-time has passed.
Result image_pipeline(const Args& a) {
  auto src = mobilenet_images(a, a.seed);
  graft::set_num_threads(1);  // the pipeline's threads are the parallelism measured here
  const Index n = src->size(), batch = 32, batches = (n + batch - 1) / batch;
  const int T = std::max(1, a.threads);
  std::vector<double> t_load(static_cast<size_t>(T), 0.0), t_aug(static_cast<size_t>(T), 0.0);
  std::vector<Index> done(static_cast<size_t>(T), 0);
  auto worker = [&](int t) {
    graft::RandomFlip<float> flip("horizontal", 100 + t);
    graft::RandomRotation<float> rot(0.1, "reflect", "bilinear", 200 + t);
    graft::RandomZoom<float> zoom(0.1, graft::ImageFactor{}, "reflect", "bilinear", 300 + t);
    std::vector<graft::UnaryLayer<float>*> aug{&flip, &rot, &zoom};
    std::vector<std::unique_ptr<graft::CallState>> st;
    for (auto* l : aug) st.push_back(l->make_state());
    std::vector<Tensor<float>> x, y;
    Tensor<float> u, v;
    std::vector<Index> rows;
    for (Index b = t; b < batches; b += T) {  // this thread's share of one pass
      const Index cnt = std::min(batch, n - b * batch);
      rows.resize(static_cast<size_t>(cnt));
      for (Index i = 0; i < cnt; ++i) rows[static_cast<size_t>(i)] = b * batch + i;
      auto t0 = Clock::now();
      src->load(rows.data(), cnt, x, y);
      auto t1 = Clock::now();
      const Tensor<float>* cur = &x[0];
      for (size_t k = 0; k < aug.size(); ++k) {
        Tensor<float>& out = k % 2 ? v : u;
        aug[k]->forward1(*cur, out, st[k].get(), true);
        cur = &out;
      }
      t_load[static_cast<size_t>(t)] += std::chrono::duration<double>(t1 - t0).count();
      t_aug[static_cast<size_t>(t)] += seconds(t1);
      done[static_cast<size_t>(t)] += cnt;
    }
  };
  auto t0 = Clock::now();
  double elapsed = 0;
  Index passes = 0;
  do {  // whole passes (every thread its share) until min_time
    std::vector<std::thread> th;
    for (int t = 1; t < T; ++t) th.emplace_back(worker, t);
    worker(0);
    for (auto& x : th) x.join();
    ++passes;
    elapsed = seconds(t0);
  } while (elapsed < a.min_time);
  Result r;
  r.secs = elapsed;
  r.samples = n * passes;
  double load = 0, aug = 0;
  Index imgs = 0;
  for (int t = 0; t < T; ++t) {
    load += t_load[static_cast<size_t>(t)];
    aug += t_aug[static_cast<size_t>(t)];
    imgs += done[static_cast<size_t>(t)];
  }
  char note[160];
  std::snprintf(note, sizeof note, "per thread: decode+resize %.0f images/s, augmentation %.0f images/s", static_cast<double>(imgs) / load,
                static_cast<double>(imgs) / aug);
  r.note = note;
  return r;
}

// ---- graft_bench layers: the convolutions of MobileNetV2 against the FMA peak -------------------

/// GFLOP/s of 12 independent chains of 8-wide (AVX2) fused multiply-adds, one thread.
__attribute__((target("avx2,fma"))) double fma_peak_avx2() {
  __m256 acc[12];
  for (auto& v : acc) v = _mm256_set1_ps(1.0f);
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  const long iters = 50000000;
  auto t0 = Clock::now();
  for (long i = 0; i < iters; ++i)
    for (auto& v : acc) v = _mm256_fmadd_ps(v, m, c);
  const double s = seconds(t0);
  float sink = 0;
  for (auto& v : acc) sink += _mm256_cvtss_f32(v);
  if (sink == 12345.0f) std::printf(" ");
  return 12.0 * 8 * 2 * static_cast<double>(iters) / s / 1e9;
}
/// The same with 16-wide (AVX-512) registers.
__attribute__((target("avx512f"))) double fma_peak_avx512() {
  __m512 acc[12];
  for (auto& v : acc) v = _mm512_set1_ps(1.0f);
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  const long iters = 50000000;
  auto t0 = Clock::now();
  for (long i = 0; i < iters; ++i)
    for (auto& v : acc) v = _mm512_fmadd_ps(v, m, c);
  const double s = seconds(t0);
  float sink = 0;
  alignas(64) float lanes[16];
  for (auto& v : acc) {
    _mm512_store_ps(lanes, v);
    sink += lanes[0];
  }
  if (sink == 12345.0f) std::printf(" ");
  return 12.0 * 16 * 2 * static_cast<double>(iters) / s / 1e9;
}

/// Forward passes of each Conv2D / DepthwiseConv2D of the MobileNetV2 trunk at batch 32 on its own
/// input shape, timed by kind; prints GFLOP/s and the fraction of the measured peak.
void layer_profile(const Args& a) {
  __builtin_cpu_init();
  const double p2 = fma_peak_avx2();
  const double p512 = __builtin_cpu_supports("avx512f") ? fma_peak_avx512() : 0.0;
  const double peak = std::max(p2, p512);
  std::printf("FMA peak, 1 core: AVX2 %.1f GFLOP/s%s\n", p2,
              p512 > 0 ? (", AVX-512 " + std::to_string(static_cast<int>(p512)) + " GFLOP/s").c_str() : "");
  auto m = graft::load_model<float>(a.weights + "/mobilenet_frozen.h5");
  std::vector<graft::Layer<float>*> convs;
  std::function<void(graft::Model<float>&)> walk = [&](graft::Model<float>& mm) {
    for (auto& l : mm.layers()) {
      if (l->is_model()) walk(static_cast<graft::Model<float>&>(*l));
      else if (l->class_name() == "Conv2D" || l->class_name() == "DepthwiseConv2D") convs.push_back(l.get());
    }
  };
  walk(*m);
  struct Kind {
    double flops = 0, secs = 0;
    int layers = 0;
  };
  std::map<std::string, Kind> kinds;
  const Index batch = 32;
  for (graft::Layer<float>* l : convs) {
    Shape in = l->build_input_shapes().at(0);
    in[0] = batch;
    Tensor<float> x(in);
    for (Index i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 7919) % 255) / 255.0f;
    auto& u = static_cast<graft::UnaryLayer<float>&>(*l);
    auto st = u.make_state();
    Tensor<float> y;
    u.forward1(x, y, st.get(), false);  // warm-up (buffers)
    const Shape& ks = l->weights()[0]->value.shape();  // [kh, kw, in, out] or [kh, kw, in, dm]
    const double cells = static_cast<double>(y.size() / y.shape().back());
    const double flops = 2.0 * cells * static_cast<double>(y.shape().back()) * static_cast<double>(ks[0] * ks[1]) *
                         (l->class_name() == "Conv2D" ? static_cast<double>(ks[2]) : 1.0);
    int reps = 0;
    auto t0 = Clock::now();
    do {
      u.forward1(x, y, st.get(), false);
      ++reps;
    } while (seconds(t0) < 0.05);
    const double secs = seconds(t0) / reps;
    std::string kind = l->class_name() == "DepthwiseConv2D" ? "3x3 depthwise (DepthwiseConv2D)"
                       : ks[0] == 1                         ? "1x1 (Conv2D, pointwise)"
                                                            : "3x3 full (Conv2D, the stem)";
    kinds[kind].flops += flops;
    kinds[kind].secs += secs;
    kinds[kind].layers += 1;
  }
  std::printf("MobileNetV2 convolutions, forward, batch 32, %d thread(s):\n", a.threads);
  for (auto& [k, v] : kinds)
    std::printf("  %-34s %2d layers  %6.2f GFLOP per batch  %7.1f ms  %6.1f GFLOP/s  %4.0f %% of %d-core peak\n", k.c_str(),
                v.layers, v.flops / 1e9, 1e3 * v.secs, v.flops / v.secs / 1e9, 100.0 * v.flops / v.secs / 1e9 / (peak * a.threads),
                a.threads);
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
  if (wl == "mobilenet_finetune_frozen") return mobilenet_finetune(a);
  if (wl == "image_pipeline") return image_pipeline(a);
  if (wl == "mobilenet_predict") {
    auto d = mobilenet_tensor(a, a.samples > 0 ? a.samples : 128);
    auto m = graft::load_model<float>(w + "mobilenet_frozen.h5");
    return predict(*m, d.x, 32, a.dump, a.min_time);
  }
  if (wl == "mobilenet_train") {
    auto d = mobilenet_tensor(a, a.samples > 0 ? a.samples : 96);
    auto m = graft::load_model<float>(w + "mobilenet_frozen.h5");
    m->set_trainable(true);  // every layer, the nested trunk's too: BatchNormalization in training mode
    m->compile(std::make_shared<graft::Adam<float>>(1e-4), "sparse_categorical_crossentropy");
    return train(*m, d, a.epochs > 0 ? a.epochs : 1, a.shuffle, a.seed, a.min_time);
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
  if (!a.tm_model.empty()) prepare_mobilenet(a);
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
    if (a.cmd == "layers") {
      layer_profile(a);
      return 0;
    }
    if (a.cmd != "run") die("unknown command '" + a.cmd + "'");
    Result r = run(a);
    std::string note;
    for (char c : r.note) note += c == '"' || c == '\\' ? '\'' : c;  // JSON-safe
    std::printf("RESULT {\"framework\": \"graft\", \"workload\": \"%s\", \"threads\": %d, \"samples\": %ld, "
                "\"seconds\": %.6f, \"samples_per_s\": %.3f, \"loss\": %.6f, \"first\": %.6f, \"peak_rss_kb\": %ld, "
                "\"note\": \"%s\"}\n",
                a.workload.c_str(), a.threads, static_cast<long>(r.samples), r.secs,
                r.secs > 0 ? static_cast<double>(r.samples) / r.secs : 0.0, r.loss, r.extra, peak_rss_kb(), note.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "graft_bench: " << e.what() << "\n";
    return 1;
  }
}
