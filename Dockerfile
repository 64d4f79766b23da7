# One image for every role: serve (default), worker, fakesd.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/easel ./cmd/easel

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/easel /usr/local/bin/easel
USER nonroot:nonroot
ENV EASEL_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 CMD ["easel", "health"]
ENTRYPOINT ["easel"]
CMD ["serve"]
