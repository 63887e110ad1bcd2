# cldpInstall.cmake — what `cmake --install` puts in place: libcldp.so.0 (versioned, with its
# links) and libcldp.a, the public headers, the CMake package (cldpConfig.cmake,
# cldpConfigVersion.cmake, the exported cldp::cldp and cldp::cldp_static), cldp.pc for
# pkg-config, and the sample programs that were built (CLDP_INSTALL_PROGRAMS).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
set(CLDP_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/cldp)

install(TARGETS cldp_shared EXPORT cldpTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_COMPONENT Development
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS cldp_static EXPORT cldpStaticTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
set(CLDP_PUBLIC_HEADERS include/cldp.h)
if(CLDP_WITH_MPI)
  list(APPEND CLDP_PUBLIC_HEADERS include/cldp_mpi.h)
endif()
install(FILES ${CLDP_PUBLIC_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# The archive needs its private dependencies found too: a separate export set, so that a machine
# without CLBlast's or zlib's development files can still use the shared library.
install(EXPORT cldpTargets NAMESPACE cldp:: DESTINATION ${CLDP_CMAKE_DIR})
install(EXPORT cldpStaticTargets NAMESPACE cldp:: DESTINATION ${CLDP_CMAKE_DIR})
configure_package_config_file(cmake/cldpConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/cldpConfig.cmake
                              INSTALL_DESTINATION ${CLDP_CMAKE_DIR})
# 0.y: minor versions may differ in ABI, so a request for 0.3 takes 0.3.z only
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/cldpConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/cldpConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/cldpConfigVersion.cmake
        DESTINATION ${CLDP_CMAKE_DIR})

# cldp.pc: OpenCL through its own .pc where the system has one; the archive's dependencies in
# Libs.private (pkg-config --static --libs cldp)
find_package(PkgConfig QUIET)
set(CLDP_PC_REQUIRES "")
set(CLDP_PC_LIBS "")
if(PKG_CONFIG_FOUND)
  pkg_check_modules(CLDP_PC_OPENCL QUIET OpenCL)
endif()
if(CLDP_PC_OPENCL_FOUND)
  set(CLDP_PC_REQUIRES "Requires: OpenCL")
else()
  set(CLDP_PC_LIBS " -lOpenCL")
endif()
set(CLDP_PC_LIBS_PRIVATE "-lclblast -lz -lpthread -lm")
if(CLDP_WITH_MPI)
  foreach(lib IN LISTS MPI_C_LIBRARIES)  # /dir/libmpi.so as -L/dir -lmpi, the way .pc files say it
    if(lib MATCHES "^(.*)/lib([^/]+)\\.(so|a)$")
      string(APPEND CLDP_PC_LIBS_PRIVATE " -L${CMAKE_MATCH_1} -l${CMAKE_MATCH_2}")
    else()
      string(APPEND CLDP_PC_LIBS_PRIVATE " ${lib}")
    endif()
  endforeach()
endif()
# relocatable: the prefix is found from the .pc file's own place, wherever --prefix put it
file(RELATIVE_PATH CLDP_PC_TO_PREFIX ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" CLDP_PC_TO_PREFIX "${CLDP_PC_TO_PREFIX}")
configure_file(cmake/cldp.pc.in ${CMAKE_CURRENT_BINARY_DIR}/cldp.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/cldp.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# the samples, finding libcldp.so.0 beside them when linked to the shared library
if(CLDP_INSTALL_PROGRAMS)
  file(RELATIVE_PATH CLDP_BIN_TO_LIB ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}
       ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR})
  set_target_properties(${CLDP_INSTALL_PROGRAMS} PROPERTIES INSTALL_RPATH "$ORIGIN/${CLDP_BIN_TO_LIB}")
  install(TARGETS ${CLDP_INSTALL_PROGRAMS} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
message(STATUS "cldp: install   ${CMAKE_INSTALL_PREFIX}: lib ${CMAKE_INSTALL_LIBDIR}, headers ${CMAKE_INSTALL_INCLUDEDIR}, "
               "programs ${CLDP_INSTALL_PROGRAMS}")
