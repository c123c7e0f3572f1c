# `cpack -G DEB` in a build directory: registrar_<version>_<arch>.deb with
# the binary, the scripts, the manual, the unit and the configuration as a
# conffile.  The package installs under /usr whatever CMAKE_INSTALL_PREFIX
# the build has: cmake/install_system.cmake writes the unit and places the
# configuration for the prefix being installed to, and the binary finds
# its scripts beside it.  The runtime dependencies come from
# dpkg-shlibdeps, from the libraries the binary links: liblua5.4-0,
# libcurl4, libcjson1, libyaml-0-2, libzookeeper-mt2 and libc6.
include("${CMAKE_CURRENT_LIST_DIR}/system_paths.cmake")
registrar_system_paths(/usr "${CMAKE_INSTALL_SYSCONFDIR}" "${REGISTRAR_SYSTEMD_UNIT_DIR}"
                       REGISTRAR_PACKAGE_ETC REGISTRAR_PACKAGE_UNITS)
file(WRITE "${CMAKE_BINARY_DIR}/packaging/deb/conffiles" "${REGISTRAR_PACKAGE_ETC}/registrar/registrar.yml\n")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME registrar)
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "registrar maintainers <registrar@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "keeps a service registry in step with the containers on a Docker host")
set(CPACK_PACKAGE_DESCRIPTION "registrar watches the Docker Engine API (or Podman's) and writes each
running container's published ports as services to etcd, Consul, ZooKeeper
or a local JSON file.  What is written is decided by Lua scripts a site can
extend.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "docker.io | podman")
# Installed as `cmake --install --prefix /usr` with DESTDIR: the paths
# outside the prefix (/etc, /lib/systemd/system) land where they belong.
set(CPACK_SET_DESTDIR ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${CMAKE_BINARY_DIR}/packaging/deb/conffiles;${CMAKE_SOURCE_DIR}/packaging/deb/postinst;${CMAKE_SOURCE_DIR}/packaging/deb/prerm;${CMAKE_SOURCE_DIR}/packaging/deb/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
