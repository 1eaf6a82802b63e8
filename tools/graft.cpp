// graft command line: summary / predict / fit on Keras .h5 files. (Filled in with the HDF5 I/O.)
#include <graft/graft.hpp>

#include <iostream>

int main(int argc, char** argv) {
  (void)argv;
  std::cerr << "graft: the command line needs the Keras file support, which is being added\n";
  return argc > 0 ? 2 : 2;
}
