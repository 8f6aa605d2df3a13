// Command kube-apiserver is the upstream Kubernetes API server, built from the
// published k8s.io/kubernetes module for raygate's end-to-end tests.
package main

import (
	"os"
	_ "time/tzdata" // CronJob time zones

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
