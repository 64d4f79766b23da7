# One image for every role: serve (default), worker, fakesd.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/easel ./cmd/easel
# The images volume's mount point, owned by the runtime user (a new named
# volume takes its ownership).
RUN mkdir -p /out/images

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/easel /usr/local/bin/easel
COPY --from=build --chown=nonroot:nonroot /out/images /images
USER nonroot:nonroot
ENV EASEL_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 CMD ["easel", "health"]
ENTRYPOINT ["easel"]
CMD ["serve"]
