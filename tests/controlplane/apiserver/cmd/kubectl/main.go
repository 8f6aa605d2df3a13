// Command kubectl is the upstream kubectl, built from the published
// k8s.io/kubectl module for raygate's end-to-end tests and docs.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	if err := cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand()); err != nil {
		// cmdutil.CheckErr prints the error the way kubectl always does and exits non-zero.
		cmdutil.CheckErr(err)
	}
	os.Exit(0)
}
