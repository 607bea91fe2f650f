<?php
echo "Hello from the plain pool";
