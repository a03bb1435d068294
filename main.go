// Command manager is the Parley operator: it reconciles ChatCluster resources
// (chat.parley.dev/v1alpha1) into running chat platforms.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/controllers"
)

// version is set at build time (-ldflags "-X main.version=v0.1.0"); it also
// picks the default chat server image tag.
var version = "dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
}

func run() error {
	var metricsAddr, probeAddr string
	var leaderElect bool
	var upgradeDelay time.Duration
	var operatorNamespace, watchNamespace string
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address the operator's /metrics endpoint binds to (0 disables it)")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
	flag.BoolVar(&leaderElect, "leader-elect", false, "elect a leader so that only one of several replicas reconciles")
	flag.DurationVar(&upgradeDelay, "upgrade-delay", controllers.DefaultUpgradeDelay,
		"after an operator upgrade, ChatClusters on the default chat server image roll one at a time; the next starts this long after the previous one's rollout completed")
	flag.StringVar(&operatorNamespace, "operator-namespace", os.Getenv("POD_NAMESPACE"),
		"namespace of the operator's own Leases (leader election, the upgrade gate); default $POD_NAMESPACE, else the service account's namespace")
	flag.StringVar(&watchNamespace, "watch-namespace", "",
		"reconcile only the ChatClusters of this namespace and cache only its objects (RBAC may then be a Role there); empty: every namespace")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	if upgradeDelay < 0 {
		return fmt.Errorf("--upgrade-delay must not be negative, got %s", upgradeDelay)
	}
	if operatorNamespace == "" {
		operatorNamespace = serviceAccountNamespace()
	}
	if operatorNamespace == "" {
		return errors.New("--operator-namespace (or $POD_NAMESPACE) is required outside a pod: the upgrade gate's Lease lives there")
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(chatv1alpha1.AddToScheme(scheme))

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "parley-operator.chat.parley.dev",
		LeaderElectionNamespace: operatorNamespace,
		// Secrets and ConfigMaps: only the operator's own in the cache (cache.go).
		Cache:  controllers.CacheOptions(watchNamespace),
		Client: controllers.ClientOptions(),
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("create discovery client: %w", err)
	}
	metrics, err := controllers.NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	ctx := ctrl.SetupSignalHandler()
	r := &controllers.ChatClusterReconciler{
		Client:       mgr.GetClient(),
		Recorder:     mgr.GetEventRecorder(controllers.FieldOwner),
		Clock:        clock.RealClock{},
		Metrics:      metrics,
		Capabilities: controllers.DiscoveryCapabilities{Discovery: disc},
		Version:      version,
		// Pods are listed only before a key promotion: uncached, no informer on every pod.
		APIReader:     mgr.GetAPIReader(),
		KeyringProber: controllers.HTTPKeyringProber{Timeout: controllers.DefaultProbeTimeout},
		Upgrades:      &controllers.UpgradeGate{Namespace: operatorNamespace, Delay: upgradeDelay},
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("set up ChatCluster controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("add ready check: %w", err)
	}
	log.Info("starting operator", "version", version, "namespace", operatorNamespace, "upgradeDelay", upgradeDelay, "watchNamespace", watchNamespace)
	return startManager(ctx, mgr)
}

func startManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	return nil
}

// serviceAccountNamespace is the namespace of the pod the operator runs in, or "".
func serviceAccountNamespace() string {
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
