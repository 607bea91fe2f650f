<?php
echo "Hello from ISPConfig web1";
