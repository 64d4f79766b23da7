// Package a1111 is the sdclient.Backend for AUTOMATIC1111, Forge and SD.Next
// servers started with --api: txt2img with progress polled from
// /sdapi/v1/progress (the one permitted poll: the server has no push API),
// interrupt, models, samplers, options and basic auth, with the servers'
// error bodies turned into readable errors.
package a1111
