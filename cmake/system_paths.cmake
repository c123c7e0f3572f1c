# Where a prefix keeps its configuration and its systemd unit.  Included by
# cmake/package.cmake at configure time and by cmake/install_system.cmake
# at install time, when the prefix may be another (cmake --install --prefix).
#
# /usr is the system's own prefix: its configuration is in /etc (the FHS has
# no /usr/etc) and Debian 12 packages ship units in /lib/systemd/system.
# Any other prefix keeps both below itself; systemd reads units from
# /usr/local/lib/systemd/system too.
function(registrar_system_paths prefix sysconfdir unitdir out_etc out_unitdir)
  if(IS_ABSOLUTE "${sysconfdir}")
    set(etc "${sysconfdir}")
  elseif(prefix STREQUAL "/usr")
    set(etc "/etc")
  else()
    set(etc "${prefix}/${sysconfdir}")
  endif()
  if(unitdir)
    set(units "${unitdir}")
  elseif(prefix STREQUAL "/usr")
    set(units "/lib/systemd/system")
  else()
    set(units "${prefix}/lib/systemd/system")
  endif()
  set(${out_etc} "${etc}" PARENT_SCOPE)
  set(${out_unitdir} "${units}" PARENT_SCOPE)
endfunction()
