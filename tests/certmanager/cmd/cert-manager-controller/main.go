// Command cert-manager-controller runs cert-manager's own controllers, from the published
// github.com/cert-manager/cert-manager module, for raygate's end-to-end tests.
//
// Upstream's binary lives in a separate module (cmd/controller, "controller-binary") that
// replaces cert-manager with ../../ and is therefore not served by the Go module proxy. This
// file is the wiring its app.Run does, reduced to what a test cluster needs: no leader
// election, no ACME, Vault or Venafi, no metrics or healthz listeners, no ingress/gateway shims.
// Every controller that runs is cert-manager's, registered by its package's init().
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/cert-manager/cert-manager/pkg/controller"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2"

	// Issuer readiness and the self-signed and CA issuers.
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
	// The Certificate lifecycle: trigger, key manager, request manager, issuing, readiness,
	// revision manager.
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	// CertificateRequests: the built-in approver and the self-signed and CA signers.
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
)

// The controllers this binary runs (cert-manager's names, as its --controllers flag takes them).
var defaultControllers = []string{
	"issuers",
	"certificates-trigger",
	"certificates-key-manager",
	"certificates-request-manager",
	"certificates-issuing",
	"certificates-readiness",
	"certificates-revision-manager",
	"certificaterequests-approver",
	"certificaterequests-issuer-selfsigned",
	"certificaterequests-issuer-ca",
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "cert-manager-controller: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	kubeconfig := flag.String("kubeconfig", "", "path to the kubeconfig of the cluster")
	namespace := flag.String("namespace", "", "only watch this namespace (default: all)")
	clusterResourceNamespace := flag.String("cluster-resource-namespace", "kube-system", "namespace for ClusterIssuer secrets")
	controllers := flag.String("controllers", strings.Join(defaultControllers, ","), "comma-separated controllers to run")
	workers := flag.Int("concurrent-workers", 5, "workers per controller")
	// klog's -v and friends, as upstream's binaries take them.
	klog.InitFlags(nil)
	logf.InitLogs()
	defer logf.FlushLogs()
	flag.Parse()
	if *kubeconfig == "" {
		return fmt.Errorf("--kubeconfig is required")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log, "controller")
	log := logf.FromContext(ctx)

	// cert-manager's defaults for the ACME solver pod (unused here, but the context parses them).
	cpu := resource.MustParse("10m")
	mem := resource.MustParse("64Mi")
	factory, err := controller.NewContextFactory(ctx, controller.ContextOptions{
		Kubeconfig:         *kubeconfig,
		KubernetesAPIQPS:   50,
		KubernetesAPIBurst: 100,
		Namespace:          *namespace,
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace: *clusterResourceNamespace,
		},
		ACMEOptions: controller.ACMEOptions{
			HTTP01SolverResourceRequestCPU:    cpu,
			HTTP01SolverResourceRequestMemory: mem,
			HTTP01SolverResourceLimitsCPU:     cpu,
			HTTP01SolverResourceLimitsMemory:  mem,
			DNS01CheckRetryPeriod:             10 * time.Second,
		},
		CertificateOptions: controller.CertificateOptions{
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
		SchedulerOptions: controller.SchedulerOptions{MaxConcurrentChallenges: 60},
	})
	if err != nil {
		return fmt.Errorf("building the controller context: %w", err)
	}
	base, err := factory.Build()
	if err != nil {
		return fmt.Errorf("building the controller context: %w", err)
	}

	known := controller.Known()
	wanted := strings.Split(*controllers, ",")
	sort.Strings(wanted)
	g, gctx := errgroup.WithContext(ctx)
	for _, name := range wanted {
		constructor, ok := known[name]
		if !ok {
			return fmt.Errorf("controller %q is not built into this binary", name)
		}
		ctl, err := constructor(factory)
		if err != nil {
			return fmt.Errorf("starting controller %s: %w", name, err)
		}
		log.Info("starting controller", "controller", name)
		g.Go(func() error { return ctl.Run(*workers, gctx) })
	}
	base.SharedInformerFactory.Start(gctx.Done())
	base.KubeSharedInformerFactory.Start(gctx.Done())
	base.HTTP01ResourceMetadataInformersFactory.Start(gctx.Done())
	if err := g.Wait(); err != nil {
		return fmt.Errorf("controllers stopped: %w", err)
	}
	base.HTTP01ResourceMetadataInformersFactory.Shutdown()
	base.KubeSharedInformerFactory.Shutdown()
	base.SharedInformerFactory.Shutdown()
	return nil
}
