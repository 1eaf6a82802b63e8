// A program using graft's optional MPI component through the graft::mpi CMake target: one
// process (not started by mpirun), a data-parallel fit of a tiny model.
#include <graft/distributed/mpi.hpp>
#include <graft/graft.hpp>

#include <iostream>

int main(int argc, char** argv) {
  graft::mpi::Environment env(argc, argv);
  auto dist = std::make_shared<graft::MpiDistributed<float>>();
  graft::set_random_seed(7);
  graft::Sequential<float> model("consumer_mpi");
  model.add<graft::InputLayer>(graft::Shape{4});
  model.add<graft::Dense>(1, "sigmoid");
  model.compile(std::make_shared<graft::SGD<float>>(0.1), "binary_crossentropy");
  graft::Tensor<float> x({16, 4}), y({16, 1});
  for (graft::Index i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7) / 7.0f;
  for (graft::Index i = 0; i < y.size(); ++i) y[i] = static_cast<float>(i % 2);
  graft::FitOptions<float> o;
  o.verbose = 0;
  o.distributed = dist;
  model.fit(x, y, o);
  std::cout << "graft::mpi: " << dist->size() << " process(es)\n";
  return dist->size() == 1 ? 0 : 1;
}
