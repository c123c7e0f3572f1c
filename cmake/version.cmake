# `registrar version` names the commit it was built from.  The header is
# regenerated at every build (one `git describe`), not only at configure
# time, so a new HEAD shows without re-running cmake.  A packager building
# from a tarball may pass -DREGISTRAR_COMMIT=<id>.
set(REGISTRAR_COMMIT "" CACHE STRING "commit registrar is built from (default: git describe of the source tree)")
set(REGISTRAR_COMMIT_HEADER "${CMAKE_BINARY_DIR}/generated/registrar_commit.h")
add_custom_target(registrar_commit
  COMMAND "${CMAKE_COMMAND}" -DSOURCE_DIR=${CMAKE_SOURCE_DIR} -DOUT=${REGISTRAR_COMMIT_HEADER}
          -DCOMMIT=${REGISTRAR_COMMIT} -P ${CMAKE_CURRENT_LIST_DIR}/git_commit.cmake
  BYPRODUCTS "${REGISTRAR_COMMIT_HEADER}"
  COMMENT "" VERBATIM)
add_dependencies(registrar registrar_commit)
target_include_directories(registrar PRIVATE "${CMAKE_BINARY_DIR}/generated")
