// Checks every MPI call (a failure becomes a recur::Error naming the call, file, line, rank and a hint)
// and waits for nonblocking collectives with a deadline. Invariant: a missed deadline ends the whole job.
#pragma once

#include <mpi.h>

#include <chrono>
#include <string>

#include "core/error.h"

namespace recur::parallel {

void ensure_mpi_initialized();      // MPI_Init_thread(MULTIPLE) once, finalised at exit
std::string mpi_error_string(int code);

// Polling for completion with a deadline. pause() sleeps between tests: not at all for the first
// 200 µs, then a tenth of the time waited so far, at most `max_sleep`, so a rank waiting for a late
// peer neither burns a core nor notices completion more than ~10% (at most max_sleep) late.
class Deadline {
 public:
  explicit Deadline(double timeout_s, std::chrono::microseconds max_sleep = std::chrono::microseconds(1000));
  bool expired() const;  // never when timeout_s is 0
  void pause();

 private:
  std::chrono::steady_clock::time_point start_;
  double timeout_s_;
  std::chrono::microseconds max_sleep_;
};

// What to say when a collective misses its deadline: the rank, the operation, the timeout and the key
// that sets it. report_missed_deadline prints it as one line on stderr, flushed.
std::string missed_deadline(int rank, int world, const std::string& what, double timeout_s, const char* key);
void report_missed_deadline(int rank, int world, const std::string& what, double timeout_s, const char* key);

// Waits for a nonblocking MPI operation. An MPI error is a recur::Error; a missed deadline
// (timeout_s > 0) is reported and ends the job with MPI_Abort(MPI_COMM_WORLD, 1).
void mpi_wait(MPI_Request& request, int rank, int world, const std::string& what, double timeout_s);

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
