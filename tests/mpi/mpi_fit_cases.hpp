// The fit cases of graft_mpi_checks (mpi_checks.cpp): model A (the Keras fixture
// handson_model_a) on tests/test_model_a.cpp's synthetic 8-class data, trained data-parallel when
// started by mpirun and on one process otherwise; run_checks.py compares the two.
//   prepare DIR             DIR/model.h5 (model A, compiled: SGD with momentum), DIR/model_b.h5
//                           (other weights), DIR/data.h5 (x_train, y_train, x_val, y_val), DIR/test.h5 (x)
//   fit DIR OUT.h5 arrays|h5 [--adam] [--batch N]
//                           3 epochs of DIR/model.h5 (batches of 31, or N) on in-memory arrays or
//                           streamed from DIR/data.h5 (H5Source); rank 0 writes the test
//                           predictions and the History to OUT.h5
//   files DIR               fit with ModelCheckpoint, CSVLogger and BackupAndRestore writing under
//                           DIR/rank<r>/: only rank 0's exist afterwards
//   small_batch             a global batch of 1 on 2 ranks: every rank throws the same value_error
#pragma once

#include <graft/data/h5_source.hpp>
#include <graft/distributed/mpi.hpp>
#include <graft/graft.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../model_a_data.hpp"

namespace graft_mpi_test {

using graft::Index;
using graft::Tensor;

/// tests/test_model_a.cpp's data (model_a_data.hpp): n samples drawn with `seed`.
inline void synthetic(Index n, std::uint64_t seed, Tensor<float>& x, Tensor<float>& y) {
  graft_test::Synthetic s(n, seed, graft_test::prototypes(1));
  x = std::move(s.x);
  y = std::move(s.y);
}

/// The distributed communicator when mpirun started this process, else none (a plain run).
inline std::shared_ptr<graft::Distributed<float>> communicator() {
  if (!graft::mpi::launched_by_mpirun()) return nullptr;
  return std::make_shared<graft::MpiDistributed<float>>();
}

inline int prepare(const std::string& dir) {
  graft::LoadOptions lo;
  lo.compile = false;
  auto m = graft::load_model<float>(std::string(GRAFT_SHARED_DIR) + "/keras-fixtures/handson_model_a/model.h5", lo);
  m->compile(std::make_shared<graft::SGD<float>>(1e-2, 0.9), "sparse_categorical_crossentropy", {"accuracy"});
  graft::save_model(*m, dir + "/model.h5");
  auto w = m->get_weights();
  for (auto& t : w)
    for (auto& v : t) v *= 1.01f;
  m->set_weights(w);
  graft::save_model(*m, dir + "/model_b.h5");
  Tensor<float> x, y, vx, vy, tx, ty;
  synthetic(650, 2, x, y);  // 21 batches of 31: the last one 30 rows
  synthetic(100, 4, vx, vy);
  synthetic(256, 3, tx, ty);
  graft::detail::atomic_write(dir + "/data.h5", [&](graft::h5::File& f) {
    auto root = graft::h5::Group::root(f);
    graft::h5::write_dataset(root, "x_train", x);
    graft::h5::write_dataset(root, "y_train", y);
    graft::h5::write_dataset(root, "x_val", vx);
    graft::h5::write_dataset(root, "y_val", vy);
  });
  graft::detail::atomic_write(dir + "/test.h5", [&](graft::h5::File& f) {
    auto root = graft::h5::Group::root(f);
    graft::h5::write_dataset(root, "x", tx);
  });
  return 0;
}

inline graft::FitOptions<float> fit_options(const std::shared_ptr<graft::Distributed<float>>& dist) {
  graft::FitOptions<float> o;
  o.epochs = 3;
  o.batch_size = 31;  // 2 ranks: shards of 16 and 15 rows
  o.seed = 5;
  o.verbose = 0;
  o.distributed = dist;
  return o;
}

inline int fit(const std::string& dir, const std::string& out, const std::string& source, bool adam, Index batch) {
  auto dist = communicator();
  auto m = graft::load_model<float>(dir + "/model.h5");
  if (adam) m->compile(std::make_shared<graft::Adam<float>>(1e-3), "sparse_categorical_crossentropy", {"accuracy"});
  auto o = fit_options(dist);
  if (batch > 0) o.batch_size = batch;
  graft::History h;
  if (source == "arrays") {
    auto f = graft::h5::File::open(dir + "/data.h5");
    auto root = graft::h5::Group::root(f);
    Tensor<float> x = graft::h5::read_dataset<float>(root, "x_train"), y = graft::h5::read_dataset<float>(root, "y_train");
    o.validation_x = {graft::h5::read_dataset<float>(root, "x_val")};
    o.validation_y = {graft::h5::read_dataset<float>(root, "y_val")};
    h = m->fit(x, y, o);
  } else if (source == "h5") {
    graft::data::H5Source<float> train(dir + "/data.h5", {"x_train"}, {"y_train"});
    o.validation_source = std::make_shared<graft::data::H5Source<float>>(dir + "/data.h5", std::vector<std::string>{"x_val"},
                                                                          std::vector<std::string>{"y_val"});
    h = m->fit(train, o);
  } else {
    throw graft::value_error("fit: the source is arrays or h5, not " + source);
  }
  if (dist && dist->rank() != 0) return 0;
  auto f = graft::h5::File::open(dir + "/test.h5");
  auto root = graft::h5::Group::root(f);
  Tensor<float> tx = graft::h5::read_dataset<float>(root, "x");
  Tensor<float> pred = m->predict(tx, 64);
  graft::detail::atomic_write(out, [&](graft::h5::File& of) {
    auto r = graft::h5::Group::root(of);
    graft::h5::write_dataset(r, "pred", pred);
    for (const char* k : {"loss", "accuracy", "val_loss", "val_accuracy"}) {
      const auto& v = h[k];
      Tensor<float> t({static_cast<Index>(v.size())});
      for (size_t i = 0; i < v.size(); ++i) t[static_cast<Index>(i)] = static_cast<float>(v[i]);
      graft::h5::write_dataset(r, k, t);
    }
  });
  return 0;
}

inline int files(const std::string& dir) {
  auto dist = communicator();
  const int rank = dist ? dist->rank() : 0;
  const std::string mine = dir + "/rank" + std::to_string(rank);
  auto m = graft::load_model<float>(dir + "/model.h5");
  auto o = fit_options(dist);
  auto f = graft::h5::File::open(dir + "/data.h5");
  auto root = graft::h5::Group::root(f);
  Tensor<float> x = graft::h5::read_dataset<float>(root, "x_train"), y = graft::h5::read_dataset<float>(root, "y_train");
  o.callbacks.push_back(std::make_shared<graft::ModelCheckpoint<float>>(mine + "/ckpt.h5", "loss"));
  o.callbacks.push_back(std::make_shared<graft::CSVLogger<float>>(mine + "/log.csv"));
  o.callbacks.push_back(std::make_shared<graft::BackupAndRestore<float>>(mine + "/backup", 5, false));
  m->fit(x, y, o);
  return 0;
}

inline int small_batch() {
  auto dist = communicator();
  auto m = graft::load_model<float>(std::string(GRAFT_SHARED_DIR) + "/keras-fixtures/handson_model_a/model.h5");
  m->compile(std::make_shared<graft::SGD<float>>(1e-2), "sparse_categorical_crossentropy");
  Tensor<float> x, y;
  synthetic(20, 2, x, y);
  auto o = fit_options(dist);
  o.batch_size = 1;
  std::string msg;
  try {
    m->fit(x, y, o);
  } catch (const graft::value_error& e) {
    msg = e.what();
  }
  std::printf("rank %d caught: %s\n", dist ? dist->rank() : 0, msg.c_str());
  std::fflush(stdout);
  return msg.find("batch") != std::string::npos ? 0 : 1;
}

inline int fit_case(const std::vector<std::string>& a) {
  const std::string mode = a.empty() ? "" : a[0];
  if (mode == "prepare" && a.size() == 2) return prepare(a[1]);
  if (mode == "fit" && a.size() >= 4) {
    bool adam = false;
    Index batch = 0;
    for (size_t i = 4; i < a.size(); ++i) {
      if (a[i] == "--adam") adam = true;
      else if (a[i] == "--batch" && i + 1 < a.size()) batch = std::stol(a[++i]);
      else throw graft::value_error("fit: unknown option " + a[i]);
    }
    return fit(a[1], a[2], a[3], adam, batch);
  }
  if (mode == "files" && a.size() == 2) return files(a[1]);
  if (mode == "small_batch") return small_batch();
  std::fprintf(stderr, "usage: graft_mpi_checks comm|mismatch|leave|crash|prepare DIR|fit DIR OUT arrays|h5 [--adam] [--batch N]|files DIR|small_batch\n");
  return 2;
}

}  // namespace graft_mpi_test
