# test_mpi_train.cmake — cldp-train under mpiexec: 2 ranks of 1 basic device each against one
# process on 2 basic devices, the same run; the final parameters' CRC-32 must be the same (the
# fixed-order combine gives 1 rank x 2 devices' bits). Run by ctest as:
#   cmake -DTRAIN=<cldp-train> -DMPIEXEC=<mpiexec> [-DEXTRA="more cldp-train options"] -P this
# (test_mpi_train_dropout: a model with dropout and MSE, whose masks follow each sample's index
# in the global batch whichever rank computes it)
if(NOT TRAIN OR NOT MPIEXEC)
  message(FATAL_ERROR "usage: cmake -DTRAIN=<cldp-train> -DMPIEXEC=<mpiexec> -P test_mpi_train.cmake")
endif()
separate_arguments(extra UNIX_COMMAND "${EXTRA}")
set(run --embedded --epochs 1 --batch 100 --json ${extra})
set(ENV{OMPI_MCA_btl_vader_single_copy_mechanism} none)
set(ENV{CLDP_DEVICES} "")
set(ENV{POCL_DEVICES} "basic")
execute_process(COMMAND ${MPIEXEC} --allow-run-as-root --oversubscribe -n 2 ${TRAIN} --mpi ${run}
                RESULT_VARIABLE rc_mpi OUTPUT_VARIABLE out_mpi ERROR_VARIABLE err_mpi TIMEOUT 300)
set(ENV{POCL_DEVICES} "basic basic")
execute_process(COMMAND ${TRAIN} ${run} RESULT_VARIABLE rc_one OUTPUT_VARIABLE out_one ERROR_VARIABLE err_one
                TIMEOUT 300)
if(NOT rc_mpi EQUAL 0 OR NOT rc_one EQUAL 0)
  message(FATAL_ERROR "FAIL a run failed: mpiexec -n 2 (${rc_mpi}):\n${out_mpi}\n${err_mpi}\none process (${rc_one}):\n${out_one}\n${err_one}")
endif()
string(REGEX MATCH "\"param_checksum\":\"0x[0-9a-f]+\"" crc_mpi "${out_mpi}")
string(REGEX MATCH "\"param_checksum\":\"0x[0-9a-f]+\"" crc_one "${out_one}")
if(NOT crc_mpi OR NOT crc_mpi STREQUAL crc_one)
  message(FATAL_ERROR "FAIL 2 ranks x 1 device gave ${crc_mpi}, 1 process x 2 devices ${crc_one}:\n${out_mpi}\n${out_one}")
endif()
# rank 0 alone reports: one summary line
string(REGEX MATCHALL "cldp-train: test accuracy" summaries "${out_mpi}")
list(LENGTH summaries nsum)
if(NOT nsum EQUAL 1)
  message(FATAL_ERROR "FAIL expected one summary line from rank 0, got ${nsum}:\n${out_mpi}")
endif()
message("ok   cldp-train --mpi: 2 ranks x 1 device and 1 process x 2 devices end with ${crc_mpi}")
