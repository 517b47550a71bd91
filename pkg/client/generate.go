// Package client is a Go client of the imagesvc API.
//
// client.gen.go is generated from the API's OpenAPI document
// (internal/httpapi/openapi.yaml) by oapi-codegen: the types and one method
// per operation (Client, ClientWithResponses). A test fails when the two
// disagree; run `make generate` after changing the document.
//
// The rest is written by hand, for what a generator does badly: Session
// (tokens that refresh themselves), uploads from an io.Reader with
// progress, waiting for an image with the long poll, and the event stream.
package client

//go:generate go tool oapi-codegen -config oapi-codegen.yaml ../../internal/httpapi/openapi.yaml
