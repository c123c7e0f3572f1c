# `cmake --install` (any CMAKE_INSTALL_PREFIX, and DESTDIR):
#
#   bin/registrar
#   share/registrar/scripts/          the default scripts, found relative to
#                                     the binary (engine/lua/script.c)
#   share/man/man8/registrar.8.gz
#   etc/registrar/registrar.yml       every key, commented, with its default
#   lib/systemd/system/registrar.service
#
# For the prefix /usr the last two are /etc/registrar/registrar.yml and
# /lib/systemd/system/registrar.service (cmake/system_paths.cmake).
set(REGISTRAR_SYSTEMD_UNIT_DIR "" CACHE PATH
    "where the systemd unit goes (default: /lib/systemd/system for the prefix /usr, else PREFIX/lib/systemd/system)")

install(TARGETS registrar RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY scripts/ DESTINATION ${CMAKE_INSTALL_DATADIR}/registrar/scripts)

# The manual, gzipped as Debian ships manuals (-n: no name or time inside,
# so the same source gives the same bytes).
set(REGISTRAR_MAN_GZ "${CMAKE_BINARY_DIR}/registrar.8.gz")
add_custom_command(OUTPUT "${REGISTRAR_MAN_GZ}"
  COMMAND sh -c "gzip -9n -c \"$0\" > \"$1\"" "${CMAKE_SOURCE_DIR}/docs/registrar.8" "${REGISTRAR_MAN_GZ}"
  DEPENDS "${CMAKE_SOURCE_DIR}/docs/registrar.8"
  COMMENT "Compressing the manual" VERBATIM)
add_custom_target(registrar_man ALL DEPENDS "${REGISTRAR_MAN_GZ}")
install(FILES "${REGISTRAR_MAN_GZ}" DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)

install(CODE "
  set(REGISTRAR_SOURCE_DIR \"${CMAKE_SOURCE_DIR}\")
  set(REGISTRAR_BINARY_DIR \"${CMAKE_BINARY_DIR}\")
  set(REGISTRAR_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(REGISTRAR_SYSCONFDIR \"${CMAKE_INSTALL_SYSCONFDIR}\")
  set(REGISTRAR_UNIT_DIR \"${REGISTRAR_SYSTEMD_UNIT_DIR}\")")
install(SCRIPT cmake/install_system.cmake)
