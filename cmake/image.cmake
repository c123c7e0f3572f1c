# `cmake --build build --target image`: registrar as a container image,
# assembled from this build's binary and the scripts
# (packaging/image/build-rootfs.sh), then loaded with `docker import` into
# the Docker that DOCKER_HOST names (else /var/run/docker.sock).  For
# machines without an image registry; packaging/image/Dockerfile is the
# same image for those with one.
set(REGISTRAR_IMAGE "registrar:${PROJECT_VERSION}" CACHE STRING "name:tag the image target imports as")
find_program(DOCKER_CLI docker)
if(DOCKER_CLI)
  add_custom_target(image
    COMMAND sh ${CMAKE_SOURCE_DIR}/packaging/image/build-rootfs.sh
            $<TARGET_FILE:registrar> ${CMAKE_SOURCE_DIR}/scripts ${CMAKE_BINARY_DIR}/image-rootfs.tar
    COMMAND ${DOCKER_CLI} import
            --change "ENTRYPOINT [\"/usr/bin/registrar\"]" --change "CMD [\"run\"]"
            --change "VOLUME /var/lib/registrar"
            --message "registrar ${PROJECT_VERSION}, from packaging/image/build-rootfs.sh"
            ${CMAKE_BINARY_DIR}/image-rootfs.tar ${REGISTRAR_IMAGE}
    COMMAND ${CMAKE_COMMAND} -E remove ${CMAKE_BINARY_DIR}/image-rootfs.tar
    COMMENT "Importing ${REGISTRAR_IMAGE} into the Docker of DOCKER_HOST"
    VERBATIM)
  add_dependencies(image registrar)   # the binary as this build makes it
else()
  add_custom_target(image
    COMMAND ${CMAKE_COMMAND} -E echo "image: no docker CLI found (apt-get install docker.io)"
    COMMAND false
    VERBATIM)
endif()
