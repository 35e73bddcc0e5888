// Checks every MPI call: a failure becomes a recur::Error naming the call, file, line, rank and a hint.
#pragma once

#include <string>

#include "core/error.h"

namespace recur::parallel {

void ensure_mpi_initialized();      // MPI_Init_thread(MULTIPLE) once, finalised at exit
std::string mpi_error_string(int code);

}  // namespace recur::parallel

#define RECUR_MPI_CHECK(call, rank)                                                                         \
  do {                                                                                                      \
    int recur_mpi_rc_ = (call);                                                                             \
    if (recur_mpi_rc_ != 0) {                                                                               \
      ::recur::fail("MPI call {} failed at {}:{} on rank {}: {} (hint: another rank may have died; check "  \
                    "its log)",                                                                             \
                    #call, __FILE__, __LINE__, (rank), ::recur::parallel::mpi_error_string(recur_mpi_rc_)); \
    }                                                                                                       \
  } while (0)
