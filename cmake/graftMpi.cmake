# graft::mpi — graft's optional data-parallel component (graft/distributed/mpi.hpp, header-only):
# graft::graft, MPI::MPI_CXX and the definition GRAFT_WITH_MPI. Expects find_package(MPI
# COMPONENTS CXX) to have run; without MPI it defines nothing (if(TARGET graft::mpi) tells), and
# graft_mpi_FOUND says which (find_package(graft COMPONENTS mpi) needs it). A GLOBAL imported
# target, so that a project that add_subdirectory()s graft sees it too; target_link_libraries
# resolves MPI::MPI_CXX here, where it was found.
if(TARGET MPI::MPI_CXX AND NOT TARGET graft::mpi)
  add_library(graft::mpi INTERFACE IMPORTED GLOBAL)
  target_link_libraries(graft::mpi INTERFACE graft::graft MPI::MPI_CXX)
  target_compile_definitions(graft::mpi INTERFACE GRAFT_WITH_MPI)
endif()
if(TARGET graft::mpi)
  set(graft_mpi_FOUND TRUE)
else()
  set(graft_mpi_FOUND FALSE)
endif()
