# graft::hdf5 — HDF5's C++ and C libraries in one imported target (expects find_package(HDF5
# COMPONENTS CXX) to have run). With CMake 3.25 + Debian's HDF5 1.10, hdf5::hdf5_cpp lacks the C
# library ("DSO missing from command line") and asking for C CXX fails in a CXX-only project;
# ${HDF5_LIBRARIES} holds both, so wrap it. HDF5_DEFINITIONS is left out on purpose: Debian's
# (HDF_NO_NAMESPACE, OLD_HEADER_FILENAME...) would change the C++ API graft is written against.
if(NOT TARGET graft::hdf5)
  add_library(graft::hdf5 INTERFACE IMPORTED)
  set_target_properties(graft::hdf5 PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${HDF5_INCLUDE_DIRS}"
    INTERFACE_LINK_LIBRARIES "${HDF5_LIBRARIES}")
endif()
