// graft CLI — its MPI glue. Built with MPI (CMake found it: GRAFT_WITH_MPI) and started by
// mpirun, `graft fit` and `graft fine-tune` train data-parallel on all the processes: rank 0
// prints "data-parallel: N processes", the progress and the result, and writes the files; the
// other ranks print only errors. Other commands run on rank 0 alone. Started without mpirun, or
// built without MPI, nothing changes: MPI is not even initialized.
#pragma once

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include <graft/graft.hpp>

#ifdef GRAFT_WITH_MPI
#include <graft/distributed/mpi.hpp>
#endif

namespace graft_cli {

/// MPI for the length of main().
class MpiSession {
 public:
  MpiSession(int& argc, char**& argv) {
#ifdef GRAFT_WITH_MPI
    if (!graft::mpi::launched_by_mpirun()) return;
    env_ = std::make_unique<graft::mpi::Environment>(argc, argv);
    dist_ = std::make_shared<graft::MpiDistributed<float>>();
    if (dist_->rank() != 0) saved_cout_ = std::cout.rdbuf(nullptr);  // rank 0 alone prints results
    agree_on_random_seed();
#else
    (void)argc;
    (void)argv;
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
      const char* n = std::getenv(v);
      if (n && std::atoi(n) > 1)
        throw graft::value_error("this graft was built without MPI: under mpirun every process would train alone and write the same "
                                 "files (install libopenmpi-dev and rebuild: CMake then builds graft with MPI)");
    }
#endif
    current() = this;
  }
  ~MpiSession() {
    if (saved_cout_) std::cout.rdbuf(saved_cout_);
    if (current() == this) current() = nullptr;
  }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  /// The session of this run (nullptr before main() made one).
  static MpiSession*& current() {
    static MpiSession* s = nullptr;
    return s;
  }
  /// Started by mpirun, built with MPI.
  bool active() const { return static_cast<bool>(distributed()); }
  int rank() const { return active() ? distributed()->rank() : 0; }
  int size() const { return active() ? distributed()->size() : 1; }
  bool chief() const { return rank() == 0; }
  std::shared_ptr<graft::Distributed<float>> distributed() const {
#ifdef GRAFT_WITH_MPI
    return dist_;
#else
    return nullptr;
#endif
  }
  /// Before command `cmd`: whether this process runs it. Under mpirun the data-parallel commands
  /// (fit, fine-tune) run on every rank and rank 0 prints "data-parallel: N processes"; the
  /// others run on rank 0 only.
  bool begin(const std::string& cmd) const {
    const bool parallel = cmd == "fit" || cmd == "fine-tune";
    if (active() && parallel) std::cout << "data-parallel: " << size() << " processes" << std::endl;  // rank 0's cout only
    return chief() || parallel;
  }
  /// "rank 1 of 2: " in front of error messages of a multi-process run.
  std::string prefix() const { return size() > 1 ? "rank " + std::to_string(rank()) + " of " + std::to_string(size()) + ": " : ""; }
  /// After this rank printed an error: `code` when every rank failed (an error every rank raised,
  /// as different model files on different ranks); otherwise the other ranks are still training or
  /// waiting, and MPI_Abort ends the whole job with `code`.
  int after_error(int code) {
#ifdef GRAFT_WITH_MPI
    if (dist_ && !dist_->every_rank_failed()) graft::mpi::abort(code);
#endif
    return code;
  }

 private:
#ifdef GRAFT_WITH_MPI
  /// graft's global generator seeded alike on every rank with rank 0's draw: the weights a command
  /// creates at random (fine-tune's new head, dropout seeds) are then the same on every process,
  /// as fit's check that all ranks start from the same weights requires.
  void agree_on_random_seed() {
    if (dist_->size() > 1) graft::set_random_seed(graft::seed_of_rank0(*dist_, graft::next_seed()));
  }

  std::unique_ptr<graft::mpi::Environment> env_;
  std::shared_ptr<graft::MpiDistributed<float>> dist_;
#endif
  std::streambuf* saved_cout_ = nullptr;
};

/// fit's options for this run: data-parallel under mpirun.
template <class Options>
void use_mpi(Options& o) {
  if (MpiSession* s = MpiSession::current()) o.distributed = s->distributed();
}

/// True on the process that writes output files (rank 0, or the only process).
inline bool writes_files() {
  MpiSession* s = MpiSession::current();
  return !s || s->chief();
}

}  // namespace graft_cli
