# Install-time part of cmake/install.cmake: the example configuration and
# the systemd unit, for the prefix being installed to now, so that
# `cmake --install --prefix P` gives a unit that starts P/bin/registrar
# with P's configuration.  DESTDIR is honoured by file(INSTALL).
#
# A configuration already there that differs from the example is an
# operator's: it is kept, and the new example goes beside it as
# registrar.yml.new.
include("${REGISTRAR_SOURCE_DIR}/cmake/system_paths.cmake")
registrar_system_paths("${CMAKE_INSTALL_PREFIX}" "${REGISTRAR_SYSCONFDIR}" "${REGISTRAR_UNIT_DIR}" etc units)

if(IS_ABSOLUTE "${REGISTRAR_BINDIR}")
  set(REGISTRAR_BIN "${REGISTRAR_BINDIR}/registrar")
else()
  set(REGISTRAR_BIN "${CMAKE_INSTALL_PREFIX}/${REGISTRAR_BINDIR}/registrar")
endif()
set(REGISTRAR_CONFIG "${etc}/registrar/registrar.yml")
# one file per destination: installs to two places at once do not mix
string(SHA1 tag "$ENV{DESTDIR}|${CMAKE_INSTALL_PREFIX}")
set(unit "${REGISTRAR_BINARY_DIR}/packaging/${tag}/registrar.service")
configure_file("${REGISTRAR_SOURCE_DIR}/packaging/registrar.service.in" "${unit}" @ONLY)
file(INSTALL "${unit}" DESTINATION "${units}")
file(REMOVE_RECURSE "${REGISTRAR_BINARY_DIR}/packaging/${tag}")

set(example "${REGISTRAR_SOURCE_DIR}/packaging/registrar.yml")
set(installed "$ENV{DESTDIR}${REGISTRAR_CONFIG}")
if(EXISTS "${installed}")
  file(SHA256 "${installed}" have)
  file(SHA256 "${example}" want)
endif()
if(EXISTS "${installed}" AND NOT have STREQUAL want)
  message(STATUS "Keeping: ${installed} (edited); the new example is registrar.yml.new")
  file(INSTALL "${example}" DESTINATION "${etc}/registrar" RENAME registrar.yml.new)
else()
  file(INSTALL "${example}" DESTINATION "${etc}/registrar")
endif()
